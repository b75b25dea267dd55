using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q5_1 (<see cref="Q5_1Format"/>) for <see cref="BlockWords{TLayout}"/>, 6 words per block: the f16
/// scale d and min m in word 0, qh (bit j: the fifth bit of value j) in word 1, then 4 words of nibbles, byte
/// j holding value j (low nibble) and value 16 + j (high nibble); value = d q + m. Units 0..3 of a block are
/// the low nibbles of its quant words, 4..7 the high ones.</summary>
internal readonly struct Q5_1Layout : IBlockWordsLayout
{
    public int BlockLength => Q5_1Format.BlockLength;
    public int BlockBytes => Q5_1Format.BlockBytes;

    public float Read4(ArrayView<int> words, long block, int unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var low = words[block + 2 + (unit & 3)] >> (4 * (unit >> 2));
        var high = words[block + 1] >> (16 * (unit >> 2) + 4 * (unit & 3));
        BlockValues.Unpack4(low, 4, high, 1, 1, 0, out q0, out q1, out q2, out q3);
        return BlockValues.HalfPair(words[block], out offset);
    }
}
