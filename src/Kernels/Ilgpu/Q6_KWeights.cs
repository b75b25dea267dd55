using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q6_K (<see cref="Q6_KFormat"/>): per super-block an f16 d and 52 words (<see cref="ScaleAndWords"/>):
/// ql (low nibbles) in words 0..31, qh (top 2 bits) in words 32..47, the 16 int8 sub-block scales in words
/// 48..51. Value v (half n = v / 128, k = v % 128 / 32, l = v % 32) has its low 4 bits in nibble k / 2 of ql
/// byte 64n + 32 (k % 2) + l and its top 2 bits at bit 2k of qh byte 32n + l; value = (d sc) (q - 32) of
/// sub-block v / 16, no offset. Unit u of a block (values 4u..4u+3) is ql word 16n + 8 (k % 2) + u % 8 and
/// qh word 8n + u % 8.</summary>
internal readonly struct Q6_KWeights(ArrayView<ushort> scales, ArrayView<int> words) : IBlockRows, IBlockStorage<Q6_KWeights>
{
    private const int Words = (Q6_KFormat.BlockBytes - 2) / 4;

    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = words;

    public static Q6_KWeights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var (scales, words) = ScaleAndWords.Upload(accelerator, blocks, Q6_KFormat.BlockBytes, scaleAt: Q6_KFormat.BlockBytes - 2, buffers);
        return new Q6_KWeights(scales, words);
    }

    public bool HasOffset => false;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 6) * Words;
        var u = (int)(unit & 63);
        var (n, k, sub) = (u >> 5, (u >> 3) & 3, u >> 2);
        var low = Quants[block + 16 * n + 8 * (k & 1) + (u & 7)] >> (4 * (k >> 1));
        var high = Quants[block + 32 + 8 * n + (u & 7)] >> (2 * k);
        var scale = (Quants[block + 48 + (sub >> 2)] << (24 - 8 * (sub & 3))) >> 24;
        offset = 0f;
        q0 = ((low & 0xF) | ((high & 3) << 4)) - 32;
        q1 = (((low >> 8) & 0xF) | (((high >> 8) & 3) << 4)) - 32;
        q2 = (((low >> 16) & 0xF) | (((high >> 16) & 3) << 4)) - 32;
        q3 = (((low >> 24) & 0xF) | (((high >> 24) & 3) << 4)) - 32;
        return Widen.F16(Scales[unit >> 6]) * scale;
    }
}
