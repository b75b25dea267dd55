using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Block-quantized weights as the kernels read them. A unit is 4 consecutive values of a row (columns
/// 4u..4u+3 of the flattened matrix) that share a scale and an offset: value_k = scale * q_k + offset,
/// q_k small integers. Types without offsets (Q8_0, Q4_0: <see cref="HasOffset"/> false) return offset 0
/// and the kernels add no offset term at all, so their results do not depend on one. The matmul reads a
/// unit's scale once for its 4 quants (<see cref="MatMulKernel.MatMulBlocks{TBlocks}"/>).
/// </summary>
internal interface IBlockRows : IWeightRows
{
    bool HasOffset { get; }

    /// <summary>The quants q0..q3 of <paramref name="unit"/>, its <paramref name="offset"/>, and its scale (returned).</summary>
    float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3);
}

/// <summary>How a block type's bytes are laid out on an accelerator: each type chooses its split
/// (scale and quant arrays, or the raw blocks as words) and returns its reader over the buffers, which
/// the weight owns. Host code only; kernels see the reader.</summary>
internal interface IBlockStorage<TSelf> where TSelf : struct, IBlockRows
{
    static abstract TSelf Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers);
}

/// <summary>The split of blocks that open with one f16 scale followed by whole 32-bit words of quants
/// (Q8_0, Q4_0): a scale buffer (ushort bit patterns) and a word buffer with the quants in the block's
/// byte order (little-endian: byte k of a word is bits 8k..8k+7), so that quant loads are aligned and
/// coalesced and the threads that read one block's units load its scale in one transaction.</summary>
internal static class ScaleAndWords
{
    public static (ArrayView<ushort> Scales, ArrayView<int> Words) Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, int blockBytes,
        ICollection<MemoryBuffer> buffers)
    {
        var count = blocks.Length / blockBytes;
        var words = (blockBytes - 2) / 4;
        var scales = new ushort[Math.Max(1, count)];
        var quants = new int[Math.Max(1, count * words)];
        for (var b = 0; b < count; b++)
        {
            var block = blocks.Slice(b * blockBytes, blockBytes);
            scales[b] = BitConverter.ToUInt16(block);
            System.Runtime.InteropServices.MemoryMarshal.Cast<byte, int>(block[2..]).CopyTo(quants.AsSpan(b * words, words));
        }
        var scaleBuffer = accelerator.Allocate1D(scales);
        var wordBuffer = accelerator.Allocate1D(quants);
        buffers.Add(scaleBuffer);
        buffers.Add(wordBuffer);
        return (scaleBuffer.View, wordBuffer.View);
    }
}
