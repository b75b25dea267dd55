using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q8_0 (<see cref="Q8_0Format"/>): per block an f16 scale d and 8 words of int8 quants
/// (<see cref="ScaleAndWords"/>); value = d * q, no offset. Units 0..7 of a block are its words.</summary>
internal readonly struct Q8_0Weights(ArrayView<ushort> scales, ArrayView<int> quants) : IBlockRows, IBlockStorage<Q8_0Weights>
{
    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = quants;

    public static Q8_0Weights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var (scales, words) = ScaleAndWords.Upload(accelerator, blocks, Q8_0Format.BlockBytes, scaleAt: 0, buffers);
        return new Q8_0Weights(scales, words);
    }

    public bool HasOffset => false;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var word = Quants[unit];
        offset = 0f;
        q0 = (word << 24) >> 24;
        q1 = (word << 16) >> 24;
        q2 = (word << 8) >> 24;
        q3 = word >> 24;
        return Widen.F16(Scales[unit >> 3]);
    }
}
