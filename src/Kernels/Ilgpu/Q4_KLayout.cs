using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q4_K (<see cref="Q4_KFormat"/>) for <see cref="BlockWords{TLayout}"/>, 36 words per super-block: the
/// f16 d and dmin in word 0, the packed 6-bit scales and mins of the 8 sub-blocks of 32 in words 1..3
/// (<see cref="BlockValues.SubBlockScale"/>), 32 words of nibbles: sub-block j in the low (j even) or high
/// nibbles of words 4 + 8 (j / 2)..4 + 8 (j / 2) + 7. Value = (d sc_j) q - (dmin m_j). Unit u of a block
/// (values 4u..4u+3) is in sub-block u / 8.</summary>
internal readonly struct Q4_KLayout : IBlockWordsLayout
{
    public int BlockLength => Q4_KFormat.BlockLength;
    public int BlockBytes => Q4_KFormat.BlockBytes;

    public float Read4(ArrayView<int> words, long block, int unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var j = unit >> 3;
        BlockValues.Unpack4(words[block + 4 + 8 * (j >> 1) + (unit & 7)] >> (4 * (j & 1)), 4, 0, out q0, out q1, out q2, out q3);
        return BlockValues.SubBlockScale(words, block, j, out offset);
    }
}
