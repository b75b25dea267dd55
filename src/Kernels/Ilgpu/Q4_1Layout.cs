using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q4_1 (<see cref="Q4_1Format"/>) for <see cref="BlockWords{TLayout}"/>, 5 words per block: the f16
/// scale d and min m in word 0, then 4 words of nibbles, byte j holding value j (low nibble) and value 16 + j
/// (high nibble); value = d q + m. Units 0..3 of a block are the low nibbles of its quant words, 4..7 the high ones.</summary>
internal readonly struct Q4_1Layout : IBlockWordsLayout
{
    public int BlockLength => Q4_1Format.BlockLength;
    public int BlockBytes => Q4_1Format.BlockBytes;

    public float Read4(ArrayView<int> words, long block, int unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        BlockValues.Unpack4(words[block + 1 + (unit & 3)] >> (4 * (unit >> 2)), 4, 0, out q0, out q1, out q2, out q3);
        return BlockValues.HalfPair(words[block], out offset);
    }
}
