using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q5_1 (<see cref="Q5_1Format"/>): 6 words per block (<see cref="BlockWords"/>), the f16 scale d and
/// min m in word 0, qh (bit j: the fifth bit of value j) in word 1, then 4 words of nibbles, byte j holding
/// value j (low nibble) and value 16 + j (high nibble); value = d q + m. Units 0..3 of a block are the low
/// nibbles of its quant words, 4..7 the high ones.</summary>
internal readonly struct Q5_1Weights(ArrayView<int> blocks) : IBlockRows, IBlockStorage<Q5_1Weights>
{
    private const int Words = Q5_1Format.BlockBytes / 4;

    public readonly ArrayView<int> Blocks = blocks;

    public static Q5_1Weights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers) =>
        new(BlockWords.Upload(accelerator, blocks, buffers));

    public bool HasOffset => true;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 3) * Words;
        var within = (int)(unit & 7);
        var header = Blocks[block];
        var word = Blocks[block + 2 + (within & 3)] >> (4 * (within >> 2));
        var high = Blocks[block + 1] >> (16 * (within >> 2) + 4 * (within & 3));
        offset = Widen.F16((ushort)(header >> 16));
        q0 = (word & 0xF) | ((high & 1) << 4);
        q1 = ((word >> 8) & 0xF) | (((high >> 1) & 1) << 4);
        q2 = ((word >> 16) & 0xF) | (((high >> 2) & 1) << 4);
        q3 = ((word >> 24) & 0xF) | (((high >> 3) & 1) << 4);
        return Widen.F16((ushort)header);
    }
}
