using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q4_K (<see cref="Q4_KFormat"/>): 36 words per super-block (<see cref="BlockWords"/>): the f16 d and
/// dmin in word 0, the packed 6-bit scales and mins of the 8 sub-blocks of 32 in words 1..3
/// (<see cref="BlockValues.ScaleAndMin"/>), 32 words of nibbles: sub-block j in the low (j even) or high
/// nibbles of words 8 (j / 2)..8 (j / 2) + 7. Value = (d sc_j) q - (dmin m_j). Unit u of a block (values
/// 4u..4u+3) is in sub-block u / 8.</summary>
internal readonly struct Q4_KWeights(ArrayView<int> blocks) : IBlockRows, IBlockStorage<Q4_KWeights>
{
    private const int Words = Q4_KFormat.BlockBytes / 4;

    public readonly ArrayView<int> Blocks = blocks;

    public static Q4_KWeights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers) =>
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
        var word = Blocks[block + 4 + 8 * (j >> 1) + (u & 7)] >> (4 * (j & 1));
        offset = -(Widen.F16((ushort)(header >> 16)) * min);
        q0 = word & 0xF;
        q1 = (word >> 8) & 0xF;
        q2 = (word >> 16) & 0xF;
        q3 = (word >> 24) & 0xF;
        return Widen.F16((ushort)header) * scale;
    }
}
