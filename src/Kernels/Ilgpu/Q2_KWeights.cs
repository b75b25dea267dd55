using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q2_K (<see cref="Q2_KFormat"/>): 21 words per super-block (<see cref="BlockWords"/>): the 16
/// sub-block bytes (scale in the low, min in the high nibble) in words 0..3, 64 bytes of 2-bit quants in
/// words 4..19, the f16 d and dmin in word 20. Value v (half n = v / 128, k = v % 128 / 32, l = v % 32) is
/// bits 2k of quant byte 32n + l; value = (d sc) q - (dmin m) of sub-block v / 16. Unit u of a block
/// (values 4u..4u+3) is quant word 8n + u % 8 shifted by 2k.</summary>
internal readonly struct Q2_KWeights(ArrayView<int> blocks) : IBlockRows, IBlockStorage<Q2_KWeights>
{
    private const int Words = Q2_KFormat.BlockBytes / 4;

    public readonly ArrayView<int> Blocks = blocks;

    public static Q2_KWeights Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers) =>
        new(BlockWords.Upload(accelerator, blocks, buffers));

    public bool HasOffset => true;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = (unit >> 6) * Words;
        var u = (int)(unit & 63);
        var scales = BlockValues.Byte(Blocks, block, u >> 2);
        var header = Blocks[block + 20];
        var word = Blocks[block + 4 + 8 * (u >> 5) + (u & 7)] >> (2 * ((u >> 3) & 3));
        offset = -(Widen.F16((ushort)(header >> 16)) * (scales >> 4));
        q0 = word & 3;
        q1 = (word >> 8) & 3;
        q2 = (word >> 16) & 3;
        q3 = (word >> 24) & 3;
        return Widen.F16((ushort)header) * (scales & 0xF);
    }
}
