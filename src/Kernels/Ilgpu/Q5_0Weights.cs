using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q5_0 (<see cref="Q5_0Format"/>): per block an f16 scale d and 5 words (<see cref="ScaleAndWords"/>):
/// qh, whose bit j is the fifth bit of value j, then 4 words of nibbles, byte j holding value j (low nibble)
/// and value 16 + j (high nibble); value = d (q - 16), no offset. Units 0..3 of a block are the low nibbles
/// of its quant words, 4..7 the high ones.</summary>
internal readonly struct Q5_0Weights(ArrayView<ushort> scales, ArrayView<int> words) : IBlockRows, IBlockStorage<Q5_0Weights>
{
    private const int Words = (Q5_0Format.BlockBytes - 2) / 4;

    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = words;

    public static Q5_0Weights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var (scales, words) = ScaleAndWords.Upload(accelerator, blocks, Q5_0Format.BlockBytes, scaleAt: 0, buffers);
        return new Q5_0Weights(scales, words);
    }

    public bool HasOffset => false;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 3) * Words;
        var within = (int)(unit & 7);
        var word = Quants[block + 1 + (within & 3)] >> (4 * (within >> 2));
        var high = Quants[block] >> (16 * (within >> 2) + 4 * (within & 3));
        offset = 0f;
        q0 = ((word & 0xF) | ((high & 1) << 4)) - 16;
        q1 = (((word >> 8) & 0xF) | (((high >> 1) & 1) << 4)) - 16;
        q2 = (((word >> 16) & 0xF) | (((high >> 2) & 1) << 4)) - 16;
        q3 = (((word >> 24) & 0xF) | (((high >> 3) & 1) << 4)) - 16;
        return Widen.F16(Scales[unit >> 3]);
    }
}
