using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q6_K (<see cref="Q6_KFormat"/>) for <see cref="ScaleAndWords{TLayout}"/>: per super-block an f16 d
/// (last) and 52 words: ql (low nibbles) in words 0..31, qh (top 2 bits) in words 32..47, the 16 int8
/// sub-block scales in words 48..51. Value v (half n = v / 128, k = v % 128 / 32, l = v % 32) has its low 4
/// bits in nibble k / 2 of ql byte 64n + 32 (k % 2) + l and its top 2 bits at bit 2k of qh byte 32n + l;
/// value = (d sc) (q - 32) of sub-block v / 16, no offset. Unit u of a block (values 4u..4u+3) is ql word
/// 16n + 8 (k % 2) + u % 8 and qh word 8n + u % 8.</summary>
internal readonly struct Q6_KLayout : IScaleAndWordsLayout
{
    public int BlockLength => Q6_KFormat.BlockLength;
    public int BlockBytes => Q6_KFormat.BlockBytes;
    public int ScaleAt => Q6_KFormat.BlockBytes - 2;

    public float Read4(ArrayView<int> words, long block, int unit, float d, out float q0, out float q1, out float q2, out float q3)
    {
        var (n, k, sub) = (unit >> 5, (unit >> 3) & 3, unit >> 2);
        var low = words[block + 16 * n + 8 * (k & 1) + (unit & 7)] >> (4 * (k >> 1));
        var high = words[block + 32 + 8 * n + (unit & 7)] >> (2 * k);
        var scale = (words[block + 48 + (sub >> 2)] << (24 - 8 * (sub & 3))) >> 24;
        BlockValues.Unpack4(low, 4, high, 2, 8, 32, out q0, out q1, out q2, out q3);
        return d * scale;
    }
}
