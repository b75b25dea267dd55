using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q2_K (<see cref="Q2_KFormat"/>) for <see cref="BlockWords{TLayout}"/>, 21 words per super-block: the 16
/// sub-block bytes (scale in the low, min in the high nibble) in words 0..3, 64 bytes of 2-bit quants in
/// words 4..19, the f16 d and dmin in word 20. Value v (half n = v / 128, k = v % 128 / 32, l = v % 32) is
/// bits 2k of quant byte 32n + l; value = (d sc) q - (dmin m) of sub-block v / 16. Unit u of a block
/// (values 4u..4u+3) is quant word 8n + u % 8 shifted by 2k.</summary>
internal readonly struct Q2_KLayout : IBlockWordsLayout
{
    public int BlockLength => Q2_KFormat.BlockLength;
    public int BlockBytes => Q2_KFormat.BlockBytes;

    public float Read4(ArrayView<int> words, long block, int unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var scales = BlockValues.Byte(words, block, unit >> 2);
        var d = BlockValues.HalfPair(words[block + 20], out var dmin);
        BlockValues.Unpack4(words[block + 4 + 8 * (unit >> 5) + (unit & 7)] >> (2 * ((unit >> 3) & 3)), 2, 0, out q0, out q1, out q2, out q3);
        offset = -(dmin * (scales >> 4));
        return d * (scales & 0xF);
    }
}
