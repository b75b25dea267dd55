using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q4_0 (<see cref="Q4_0Format"/>) for <see cref="ScaleAndWords{TLayout}"/>: per block an f16 scale d
/// (first) and 4 words of nibbles, byte j holding value j (low nibble) and value 16 + j (high nibble);
/// value = d * (q - 8), no offset. Units 0..3 of a block are the low nibbles of its words, 4..7 the high ones.</summary>
internal readonly struct Q4_0Layout : IScaleAndWordsLayout
{
    public int BlockLength => Q4_0Format.BlockLength;
    public int BlockBytes => Q4_0Format.BlockBytes;
    public int ScaleAt => 0;

    public float Read4(ArrayView<int> words, long block, int unit, float d, out float q0, out float q1, out float q2, out float q3)
    {
        BlockValues.Unpack4(words[block + (unit & 3)] >> (4 * (unit >> 2)), 4, 8, out q0, out q1, out q2, out q3);
        return d;
    }
}
