using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Block-quantized weights as the kernels read them. A unit is 4 consecutive values of a row (columns
/// 4u..4u+3 of the flattened matrix) that share a scale and an offset: value_k = scale * q_k + offset,
/// q_k small integers. Types without offsets (Q8_0, Q4_0, Q5_0, Q3_K, Q6_K: <see cref="HasOffset"/> false) return offset 0
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

/// <summary>The value at <c>index</c> of a block reader, through its unit: scale * q (+ offset where the type
/// has offsets), the product and sum the format's definition forms. Kernels that read single values (the
/// embedding lookup) read them this way.</summary>
internal static class BlockValues
{
    public static float Read<TBlocks>(TBlocks rows, long index) where TBlocks : struct, IBlockRows
    {
        var scale = rows.Read4(index >> 2, out var offset, out var q0, out var q1, out var q2, out var q3);
        var k = (int)(index & 3);
        var q = k == 0 ? q0 : k == 1 ? q1 : k == 2 ? q2 : q3;
        return rows.HasOffset ? scale * q + offset : scale * q;
    }

    /// <summary>Byte <paramref name="index"/> of the words from <paramref name="first"/> on (byte k of a word is bits 8k..8k+7).</summary>
    public static int Byte(ArrayView<int> words, long first, int index) => (words[first + (index >> 2)] >> (8 * (index & 3))) & 0xFF;

    /// <summary>Q4_K and Q5_K: sub-block j's 6-bit scale (returned) and <paramref name="min"/> from the 12 packed
    /// bytes at word <paramref name="first"/> (get_scale_min_k4, <see cref="Numerics.PackedScales.ScaleAndMin"/>).</summary>
    public static int ScaleAndMin(ArrayView<int> words, long first, int j, out int min)
    {
        if (j < 4)
        {
            min = Byte(words, first, j + 4) & 63;
            return Byte(words, first, j) & 63;
        }
        var both = Byte(words, first, j + 4);
        min = (both >> 4) | ((Byte(words, first, j) >> 6) << 4);
        return (both & 0xF) | ((Byte(words, first, j - 4) >> 6) << 4);
    }
}

/// <summary>The split of blocks that hold one f16 scale and whole 32-bit words of everything else
/// (Q8_0, Q4_0, Q5_0: the scale first; Q3_K, Q6_K: the scale last): a scale buffer (ushort bit
/// patterns) and a word buffer with the rest of each block in its byte order (little-endian: byte k of a
/// word is bits 8k..8k+7), so that quant loads are aligned and coalesced and the threads that read one
/// block's units load its scale in one transaction. The buffers hold the file's bytes, no padding.</summary>
internal static class ScaleAndWords
{
    public static (ArrayView<ushort> Scales, ArrayView<int> Words) Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, int blockBytes, int scaleAt,
        ICollection<MemoryBuffer> buffers)
    {
        var count = blocks.Length / blockBytes;
        var words = (blockBytes - 2) / 4;
        var scales = new ushort[Math.Max(1, count)];
        var quants = new int[Math.Max(1, count * words)];
        for (var b = 0; b < count; b++)
        {
            var block = blocks.Slice(b * blockBytes, blockBytes);
            scales[b] = BitConverter.ToUInt16(block[scaleAt..]);
            var target = MemoryMarshal.AsBytes(quants.AsSpan(b * words, words));
            block[..scaleAt].CopyTo(target);
            block[(scaleAt + 2)..].CopyTo(target[scaleAt..]);
        }
        var scaleBuffer = accelerator.Allocate1D(scales);
        var wordBuffer = accelerator.Allocate1D(quants);
        buffers.Add(scaleBuffer);
        buffers.Add(wordBuffer);
        return (scaleBuffer.View, wordBuffer.View);
    }
}

/// <summary>Blocks of whole 32-bit words (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K) as they are, one word buffer in
/// the blocks' byte order: the file's bytes.</summary>
internal static class BlockWords
{
    public static ArrayView<int> Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var words = new int[Math.Max(1, blocks.Length / 4)];
        blocks.CopyTo(MemoryMarshal.AsBytes(words.AsSpan()));
        var buffer = accelerator.Allocate1D(words);
        buffers.Add(buffer);
        return buffer.View;
    }
}
