using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q5_K (<see cref="Q5_KFormat"/>): 44 words per super-block (<see cref="BlockWords"/>): the f16 d and
/// dmin in word 0, the packed 6-bit scales and mins of the 8 sub-blocks of 32 in words 1..3
/// (<see cref="BlockValues.ScaleAndMin"/>), qh in words 4..11 (bit j of byte l: the fifth bit of value l of
/// sub-block j), 32 words of nibbles as Q4_K's. Value = (d sc_j) q - (dmin m_j). Unit u of a block (values
/// 4u..4u+3) is in sub-block u / 8 and takes its fifth bits from qh word u % 8.</summary>
internal readonly struct Q5_KWeights(ArrayView<int> blocks) : IBlockRows, IBlockStorage<Q5_KWeights>
{
    private const int Words = Q5_KFormat.BlockBytes / 4;

    public readonly ArrayView<int> Blocks = blocks;

    public static Q5_KWeights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers) =>
        new(BlockWords.Upload(accelerator, blocks, buffers));

    public bool HasOffset => true;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 6) * Words;
        var u = (int)(unit & 63);
        var j = u >> 3;
        var header = Blocks[block];
        var scale = BlockValues.ScaleAndMin(Blocks, block + 1, j, out var min);
        var word = Blocks[block + 12 + 8 * (j >> 1) + (u & 7)] >> (4 * (j & 1));
        var high = Blocks[block + 4 + (u & 7)] >> j;
        offset = -(Widen.F16((ushort)(header >> 16)) * min);
        q0 = (word & 0xF) | ((high & 1) << 4);
        q1 = ((word >> 8) & 0xF) | (((high >> 8) & 1) << 4);
        q2 = ((word >> 16) & 0xF) | (((high >> 16) & 1) << 4);
        q3 = ((word >> 24) & 0xF) | (((high >> 24) & 1) << 4);
        return Widen.F16((ushort)header) * scale;
    }
}
