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

/// <summary>How a block type's bytes are laid out on an accelerator: each reader chooses its split
/// (<see cref="ScaleAndWords{TLayout}"/>: scale and word arrays; <see cref="BlockWords{TLayout}"/>: the raw
/// blocks as words) and returns itself over the buffers, which the weight owns. Host code only; kernels see
/// the reader.</summary>
internal interface IBlockStorage<TSelf> where TSelf : struct, IBlockRows
{
    static abstract TSelf Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers);
}

/// <summary>The value at <c>index</c> of a block reader, through its unit: scale * q (+ offset where the type
/// has offsets), the product and sum the format's definition forms. Kernels that read single values (the
/// embedding lookup) read them this way. Also the pieces the block layouts share.</summary>
internal static class BlockValues
{
    public static float Read<TBlocks>(TBlocks rows, long index) where TBlocks : struct, IBlockRows
    {
        var scale = rows.Read4(index >> 2, out var offset, out var q0, out var q1, out var q2, out var q3);
        var k = (int)(index & 3);
        var q = k == 0 ? q0 : k == 1 ? q1 : k == 2 ? q2 : q3;
        return rows.HasOffset ? scale * q + offset : scale * q;
    }

    /// <summary>The block of <paramref name="unit"/> (returned) and the unit's index <paramref name="within"/> it,
    /// for blocks of <paramref name="blockLength"/> values (a power of two: a shift and a mask).</summary>
    public static long BlockOf(long unit, int blockLength, out int within)
    {
        var units = blockLength / 4;
        within = (int)(unit & (units - 1));
        return (long)((ulong)unit / (ulong)units);
    }

    /// <summary>Quant k of a unit from byte k of <paramref name="low"/>: its low <paramref name="lowBits"/> bits,
    /// minus <paramref name="bias"/>.</summary>
    public static void Unpack4(int low, int lowBits, int bias, out float q0, out float q1, out float q2, out float q3) =>
        Unpack4(low, lowBits, 0, 0, 0, bias, out q0, out q1, out q2, out q3);

    /// <summary>Quant k of a unit: the low <paramref name="lowBits"/> bits of byte k of <paramref name="low"/>, with
    /// above them the low <paramref name="highBits"/> bits of <paramref name="high"/> shifted right by
    /// <paramref name="highStride"/> k, minus <paramref name="bias"/>.</summary>
    public static void Unpack4(int low, int lowBits, int high, int highBits, int highStride, int bias, out float q0, out float q1, out float q2, out float q3)
    {
        var (lowMask, highMask) = ((1 << lowBits) - 1, (1 << highBits) - 1);
        q0 = ((low & lowMask) | ((high & highMask) << lowBits)) - bias;
        q1 = (((low >> 8) & lowMask) | (((high >> highStride) & highMask) << lowBits)) - bias;
        q2 = (((low >> 16) & lowMask) | (((high >> (2 * highStride)) & highMask) << lowBits)) - bias;
        q3 = (((low >> 24) & lowMask) | (((high >> (3 * highStride)) & highMask) << lowBits)) - bias;
    }

    /// <summary>Two f16 values packed in a word: the low half widened (returned) and the <paramref name="high"/> one.</summary>
    public static float HalfPair(int word, out float high)
    {
        high = Widen.F16((ushort)(word >> 16));
        return Widen.F16((ushort)word);
    }

    /// <summary>Byte <paramref name="index"/> of the words from <paramref name="first"/> on (byte k of a word is bits 8k..8k+7).</summary>
    public static int Byte(ArrayView<int> words, long first, int index) => (words[first + (index >> 2)] >> (8 * (index & 3))) & 0xFF;

    /// <summary>Q4_K and Q5_K: sub-block <paramref name="j"/>'s scale d sc_j (returned) and <paramref name="offset"/>
    /// -(dmin m_j), from the block's first 4 words: d and dmin, then the packed 6-bit scales and mins.</summary>
    public static float SubBlockScale(ArrayView<int> words, long block, int j, out float offset)
    {
        var d = HalfPair(words[block], out var dmin);
        var scale = ScaleAndMin(words, block + 1, j, out var min);
        offset = -(dmin * min);
        return d * scale;
    }

    /// <summary>Sub-block j's 6-bit scale (returned) and <paramref name="min"/> from the 12 packed bytes at word
    /// <paramref name="first"/> (get_scale_min_k4, <see cref="Numerics.PackedScales.ScaleAndMin"/>).</summary>
    private static int ScaleAndMin(ArrayView<int> words, long first, int j, out int min)
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

/// <summary>A block type's own part of its reader: its geometry, and (through the two interfaces below)
/// where the quants, scale and offset of a unit lie in a block. Implementations are empty structs that the
/// readers call on their default value, so ILGPU inlines them into each kernel with their constants folded.</summary>
internal interface IBlockLayout
{
    /// <summary>Values per block: 32, or 256 for a K-quant super-block.</summary>
    int BlockLength { get; }

    /// <summary>Bytes per block in the file.</summary>
    int BlockBytes { get; }
}

/// <summary>A type read by <see cref="BlockWords{TLayout}"/>: scales and offsets inside the block's words.</summary>
internal interface IBlockWordsLayout : IBlockLayout
{
    /// <summary>The quants, <paramref name="offset"/> and scale (returned) of unit <paramref name="unit"/> of the
    /// block whose first word is <paramref name="block"/>.</summary>
    float Read4(ArrayView<int> words, long block, int unit, out float offset, out float q0, out float q1, out float q2, out float q3);
}

/// <summary>A type read by <see cref="ScaleAndWords{TLayout}"/>: one f16 scale d per block, no offsets.</summary>
internal interface IScaleAndWordsLayout : IBlockLayout
{
    /// <summary>Where d stands in a block: 0 (its first two bytes) or <see cref="IBlockLayout.BlockBytes"/> - 2.</summary>
    int ScaleAt { get; }

    /// <summary>The quants and scale (returned: <paramref name="d"/>, times the unit's sub-block scale where the
    /// type has them) of unit <paramref name="unit"/> of the block whose other words start at <paramref name="block"/>.</summary>
    float Read4(ArrayView<int> words, long block, int unit, float d, out float q0, out float q1, out float q2, out float q3);
}

/// <summary>Blocks of whole 32-bit words (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K; all with offsets) as they are, one
/// word buffer in the blocks' byte order: the file's bytes.</summary>
internal readonly struct BlockWords<TLayout>(ArrayView<int> blocks) : IBlockRows, IBlockStorage<BlockWords<TLayout>>
    where TLayout : struct, IBlockWordsLayout
{
    public readonly ArrayView<int> Blocks = blocks;

    public static BlockWords<TLayout> Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var words = new int[Math.Max(1, blocks.Length / 4)];
        blocks.CopyTo(MemoryMarshal.AsBytes(words.AsSpan()));
        var buffer = accelerator.Allocate1D(words);
        buffers.Add(buffer);
        return new(buffer.View);
    }

    public bool HasOffset => true;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var layout = default(TLayout);
        var block = BlockValues.BlockOf(unit, layout.BlockLength, out var within);
        return layout.Read4(Blocks, block * (layout.BlockBytes / 4), within, out offset, out q0, out q1, out q2, out q3);
    }
}

/// <summary>Blocks that hold one f16 scale and whole 32-bit words of everything else (Q8_0, Q4_0, Q5_0: the
/// scale first; Q3_K, Q6_K: the scale last), split in two: a scale buffer (ushort bit patterns) and a word
/// buffer with the rest of each block in its byte order (little-endian: byte k of a word is bits 8k..8k+7),
/// so that quant loads are aligned and coalesced and the threads that read one block's units load its scale
/// in one transaction. The buffers hold the file's bytes, no padding.</summary>
internal readonly struct ScaleAndWords<TLayout>(ArrayView<ushort> scales, ArrayView<int> words) : IBlockRows, IBlockStorage<ScaleAndWords<TLayout>>
    where TLayout : struct, IScaleAndWordsLayout
{
    private static int Words => (default(TLayout).BlockBytes - 2) / 4;

    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = words;

    public static ScaleAndWords<TLayout> Upload(Accelerator accelerator, ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers)
    {
        var (blockBytes, scaleAt) = (default(TLayout).BlockBytes, default(TLayout).ScaleAt);
        var count = blocks.Length / blockBytes;
        var scales = new ushort[Math.Max(1, count)];
        var quants = new int[Math.Max(1, count * Words)];
        for (var b = 0; b < count; b++)
        {
            var block = blocks.Slice(b * blockBytes, blockBytes);
            scales[b] = BitConverter.ToUInt16(block[scaleAt..]);
            var target = MemoryMarshal.AsBytes(quants.AsSpan(b * Words, Words));
            block[..scaleAt].CopyTo(target);
            block[(scaleAt + 2)..].CopyTo(target[scaleAt..]);
        }
        var scaleBuffer = accelerator.Allocate1D(scales);
        var wordBuffer = accelerator.Allocate1D(quants);
        buffers.Add(scaleBuffer);
        buffers.Add(wordBuffer);
        return new(scaleBuffer.View, wordBuffer.View);
    }

    public bool HasOffset => false;

    public float Read(long index) => BlockValues.Read(this, index);

    public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
    {
        var block = BlockValues.BlockOf(unit, default(TLayout).BlockLength, out var within);
        offset = 0f;
        return default(TLayout).Read4(Quants, block * Words, within, Widen.F16(Scales[block]), out q0, out q1, out q2, out q3);
    }
}
