using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q4_0 (<see cref="Q4_0Format"/>): per block an f16 scale d and 4 words of nibbles
/// (<see cref="ScaleAndWords"/>), byte j holding value j (low nibble) and value 16 + j (high nibble);
/// value = d * (q - 8), no offset. Units 0..3 of a block are the low nibbles of its words, 4..7 the high ones.</summary>
internal readonly struct Q4_0Weights(ArrayView<ushort> scales, ArrayView<int> quants) : IBlockRows, IBlockStorage<Q4_0Weights>
{
    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = quants;

    public static Q4_0Weights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var (scales, words) = ScaleAndWords.Upload(accelerator, blocks, Q4_0Format.BlockBytes, scaleAt: 0, buffers);
        return new Q4_0Weights(scales, words);
    }

    public bool HasOffset => false;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var within = (int)(unit & 7);
        var word = Quants[((unit >> 3) << 2) + (within & 3)] >> (4 * (within >> 2));
        offset = 0f;
        q0 = (word & 0xF) - 8;
        q1 = ((word >> 8) & 0xF) - 8;
        q2 = ((word >> 16) & 0xF) - 8;
        q3 = ((word >> 24) & 0xF) - 8;
        return Widen.F16(Scales[unit >> 3]);
    }
}
