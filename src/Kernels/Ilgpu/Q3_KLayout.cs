using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q3_K (<see cref="Q3_KFormat"/>) for <see cref="ScaleAndWords{TLayout}"/>: per super-block an f16 d
/// (last) and 27 words: hmask in words 0..7, 2-bit quants in words 8..23, the 16 packed 6-bit scales in words
/// 24..26. Value v (half n = v / 128, k = v % 128 / 32, l = v % 32) has its low bits at bit 2k of quant byte
/// 32n + l and its high bit at bit 4n + k of hmask byte l; value = (d sc) (q - 4) of sub-block v / 16, no
/// offset. Unit u of a block (values 4u..4u+3) is quant word 8n + u % 8 and hmask word u % 8.</summary>
internal readonly struct Q3_KLayout : IScaleAndWordsLayout
{
    public int BlockLength => Q3_KFormat.BlockLength;
    public int BlockBytes => Q3_KFormat.BlockBytes;
    public int ScaleAt => Q3_KFormat.BlockBytes - 2;

    public float Read4(ArrayView<int> words, long block, int unit, float d, out float q0, out float q1, out float q2, out float q3)
    {
        var (n, k, sub) = (unit >> 5, (unit >> 3) & 3, unit >> 2);
        var low = words[block + 8 + 8 * n + (unit & 7)] >> (2 * k);
        var high = words[block + (unit & 7)] >> (4 * n + k);
        // The 6-bit scale: its low 4 bits in the low (sub < 8) or high nibble of byte sub % 8, its top 2 bits
        // at bit 2 (sub / 4) of byte 8 + sub % 4 (PackedScales.SignedScale).
        var first = block + 24;
        var scale = ((BlockValues.Byte(words, first, sub & 7) >> (4 * (sub >> 3))) & 0xF
            | ((BlockValues.Byte(words, first, 8 + (sub & 3)) >> (2 * (sub >> 2))) & 3) << 4) - 32;
        BlockValues.Unpack4(low, 2, high, 1, 8, 4, out q0, out q1, out q2, out q3);
        return d * scale;
    }
}
