using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q5_K (<see cref="Q5_KFormat"/>) for <see cref="BlockWords{TLayout}"/>, 44 words per super-block: the
/// f16 d and dmin in word 0, the packed 6-bit scales and mins of the 8 sub-blocks of 32 in words 1..3
/// (<see cref="BlockValues.SubBlockScale"/>), qh in words 4..11 (bit j of byte l: the fifth bit of value l of
/// sub-block j), 32 words of nibbles as Q4_K's from word 12. Value = (d sc_j) q - (dmin m_j). Unit u of a block
/// (values 4u..4u+3) is in sub-block u / 8 and takes its fifth bits from qh word u % 8.</summary>
internal readonly struct Q5_KLayout : IBlockWordsLayout
{
    public int BlockLength => Q5_KFormat.BlockLength;
    public int BlockBytes => Q5_KFormat.BlockBytes;

    public float Read4(ArrayView<int> words, long block, int unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var j = unit >> 3;
        var low = words[block + 12 + 8 * (j >> 1) + (unit & 7)] >> (4 * (j & 1));
        var high = words[block + 4 + (unit & 7)] >> j;
        BlockValues.Unpack4(low, 4, high, 1, 8, 0, out q0, out q1, out q2, out q3);
        return BlockValues.SubBlockScale(words, block, j, out offset);
    }
}
