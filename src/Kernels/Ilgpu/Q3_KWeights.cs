using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q3_K (<see cref="Q3_KFormat"/>): per super-block an f16 d and 27 words (<see cref="ScaleAndWords"/>):
/// hmask in words 0..7, 2-bit quants in words 8..23, the 16 packed 6-bit scales in words 24..26. Value v
/// (half n = v / 128, k = v % 128 / 32, l = v % 32) has its low bits at bit 2k of quant byte 32n + l and its
/// high bit at bit 4n + k of hmask byte l; value = (d sc) (q - 4) of sub-block v / 16, no offset. Unit u of a
/// block (values 4u..4u+3) is quant word 8n + u % 8 and hmask word u % 8.</summary>
internal readonly struct Q3_KWeights(ArrayView<ushort> scales, ArrayView<int> words) : IBlockRows, IBlockStorage<Q3_KWeights>
{
    private const int Words = (Q3_KFormat.BlockBytes - 2) / 4;

    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = words;

    public static Q3_KWeights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var (scales, words) = ScaleAndWords.Upload(accelerator, blocks, Q3_KFormat.BlockBytes, scaleAt: Q3_KFormat.BlockBytes - 2, buffers);
        return new Q3_KWeights(scales, words);
    }

    public bool HasOffset => false;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 6) * Words;
        var u = (int)(unit & 63);
        var (n, k, sub) = (u >> 5, (u >> 3) & 3, u >> 2);
        var low = Quants[block + 8 + 8 * n + (u & 7)] >> (2 * k);
        var high = Quants[block + (u & 7)] >> (4 * n + k);
        // The 6-bit scale: its low 4 bits in the low (sub < 8) or high nibble of byte sub % 8, its top 2 bits
        // at bit 2 (sub / 4) of byte 8 + sub % 4 (PackedScales.SignedScale).
        var first = block + 24;
        var scale = ((BlockValues.Byte(Quants, first, sub & 7) >> (4 * (sub >> 3))) & 0xF
            | ((BlockValues.Byte(Quants, first, 8 + (sub & 3)) >> (2 * (sub >> 2))) & 3) << 4) - 32;
        offset = 0f;
        q0 = ((low & 3) | ((high & 1) << 2)) - 4;
        q1 = (((low >> 8) & 3) | (((high >> 8) & 1) << 2)) - 4;
        q2 = (((low >> 16) & 3) | (((high >> 16) & 1) << 2)) - 4;
        q3 = (((low >> 24) & 3) | (((high >> 24) & 1) << 2)) - 4;
        return Widen.F16(Scales[unit >> 6]) * scale;
    }
}
