using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q4_1 (<see cref="Q4_1Format"/>): 5 words per block (<see cref="BlockWords"/>), the f16 scale d and
/// min m in word 0, then 4 words of nibbles, byte j holding value j (low nibble) and value 16 + j (high
/// nibble); value = d q + m. Units 0..3 of a block are the low nibbles of its quant words, 4..7 the high ones.</summary>
internal readonly struct Q4_1Weights(ArrayView<int> blocks) : IBlockRows, IBlockStorage<Q4_1Weights>
{
    private const int Words = Q4_1Format.BlockBytes / 4;

    public readonly ArrayView<int> Blocks = blocks;

    public static Q4_1Weights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers) =>
        new(BlockWords.Upload(accelerator, blocks, buffers));

    public bool HasOffset => true;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 3) * Words;
        var within = (int)(unit & 7);
        var header = Blocks[block];
        var word = Blocks[block + 1 + (within & 3)] >> (4 * (within >> 2));
        offset = Widen.F16((ushort)(header >> 16));
        q0 = word & 0xF;
        q1 = (word >> 8) & 0xF;
        q2 = (word >> 16) & 0xF;
        q3 = (word >> 24) & 0xF;
        return Widen.F16((ushort)header);
    }
}
