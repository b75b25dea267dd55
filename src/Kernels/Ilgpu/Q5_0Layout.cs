using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q5_0 (<see cref="Q5_0Format"/>) for <see cref="ScaleAndWords{TLayout}"/>: per block an f16 scale d
/// (first) and 5 words: qh, whose bit j is the fifth bit of value j, then 4 words of nibbles, byte j holding
/// value j (low nibble) and value 16 + j (high nibble); value = d (q - 16), no offset. Units 0..3 of a block
/// are the low nibbles of its quant words, 4..7 the high ones.</summary>
internal readonly struct Q5_0Layout : IScaleAndWordsLayout
{
    public int BlockLength => Q5_0Format.BlockLength;
    public int BlockBytes => Q5_0Format.BlockBytes;
    public int ScaleAt => 0;

    public float Read4(ArrayView<int> words, long block, int unit, float d, out float q0, out float q1, out float q2, out float q3)
    {
        var low = words[block + 1 + (unit & 3)] >> (4 * (unit >> 2));
        var high = words[block] >> (16 * (unit >> 2) + 4 * (unit & 3));
        BlockValues.Unpack4(low, 4, high, 1, 1, 16, out q0, out q1, out q2, out q3);
        return d;
    }
}
