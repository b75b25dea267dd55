namespace Kangaroo.Native.Tests.Numerics;

/// <summary>
/// Every block type's dequantization against ggml's own definition (<see cref="GgmlDequantize"/>, a
/// transcription of ggml-quants.c), one block at a time and bit for bit: random quants under f16 scales and
/// mins that are ordinary, negative, subnormal, zero of both signs, the largest finite and non-finite, and
/// (K-quants) packed sub-block scales and mins that are random, all zero or all maximal, so every sub-block
/// index reads every bit pattern of its scale (Q4_K and Q5_K pack sub-blocks 0-3 and 4-7 differently).
/// </summary>
public sealed class BlockFormatTests
{
    public static TheoryData<ElementType> BlockTypes => [.. ElementTypes.All.Where(t => t.Format is not null).Select(t => t.Type)];

    [Theory, MemberData(nameof(BlockTypes))]
    public void Blocks_dequantize_as_ggml_defines_them(ElementType type)
    {
        var format = type.Format();
        const int count = 700;
        var bytes = RandomBlocks.Make(type, count, seed: (int)type, nonFinite: true);
        var row = new float[count * format.BlockLength];
        ElementTypes.ToFloats(type, bytes, row); // whole rows: one block after another
        var halves = RandomBlocks.Fields(type).Halves;
        for (var b = 0; b < count; b++)
        {
            var block = bytes.AsSpan(b * format.BlockBytes, format.BlockBytes);
            var expected = GgmlDequantize.Block(type, block);
            var actual = new float[format.BlockLength];
            format.Dequantize(block, actual);
            for (var i = 0; i < expected.Length; i++)
            {
                Assert.True(Same(expected[i], actual[i]), $"{type} block {b} value {i} (sub-block {i / 16} of 16 or {i / 32} of 32): {actual[i]:R}, ggml {expected[i]:R}");
                Assert.True(Same(expected[i], row[b * format.BlockLength + i]), $"{type} block {b} value {i} in a row: {row[b * format.BlockLength + i]:R}, ggml {expected[i]:R}");
            }
            var offset = b * format.BlockBytes;
            var nonFiniteField = halves.Any(h => (BitConverter.ToUInt16(bytes, offset + h) & 0x7C00) == 0x7C00);
            Assert.Equal(nonFiniteField, format.HasNonFiniteScale(block));
            if (nonFiniteField) Assert.All(expected, v => Assert.False(float.IsFinite(v)));
            Assert.Equal(expected.All(v => v == 0f), format.IsZero(block));
        }
        Assert.Contains(Enumerable.Range(0, count), b => format.IsZero(bytes.AsSpan(b * format.BlockBytes, format.BlockBytes)));
    }

    private static bool Same(float expected, float actual) =>
        BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual) || (float.IsNaN(expected) && float.IsNaN(actual));

    /// <summary>The quantizers' blocks read back within a few quantization steps of the input (llama.cpp's
    /// bytes themselves are compared in Loader/LlamaCppQuantizationTests): each value's error is at most the
    /// largest error a value can have under the block's own scales (half a step between levels, or more
    /// where a value lies outside the range the fitted scale and min cover, which the bound measures by the
    /// block's range divided by its levels).</summary>
    [Theory]
    [InlineData(ElementType.Q4_1, 15)]
    [InlineData(ElementType.Q5_0, 31)]
    [InlineData(ElementType.Q5_1, 31)]
    [InlineData(ElementType.Q3_K, 7)]
    [InlineData(ElementType.Q4_K, 15)]
    [InlineData(ElementType.Q5_K, 31)]
    [InlineData(ElementType.Q6_K, 63)]
    public void Quantized_blocks_read_back_close_to_their_values(ElementType type, int levels)
    {
        var random = new Random(3);
        var length = 4 * type.BlockLength();
        foreach (var magnitude in new[] { 1e-3f, 1f, 300f })
        {
            var x = Enumerable.Range(0, length).Select(i => (float)(random.NextDouble() * 2 - 1) * magnitude * (i % 64 < 8 ? 4 : 1)).ToArray();
            var bytes = new byte[type.ByteCount(length)];
            Quantization.Quantize(type, x, bytes);
            var values = new float[length];
            Quantization.Dequantize(type, bytes, values);
            for (var b = 0; b < length / type.BlockLength(); b++)
            {
                var block = x.AsSpan(b * type.BlockLength(), type.BlockLength());
                var step = (block.ToArray().Max() - block.ToArray().Min()) / levels;
                for (var i = 0; i < block.Length; i++)
                {
                    var index = b * type.BlockLength() + i;
                    Assert.True(MathF.Abs(values[index] - x[index]) <= 2 * step, $"{type} magnitude {magnitude} value {index}: {values[index]} vs {x[index]} (step {step})");
                }
            }
        }
    }

    [Theory]
    [InlineData(ElementType.Q4_1)]
    [InlineData(ElementType.Q5_0)]
    [InlineData(ElementType.Q5_1)]
    [InlineData(ElementType.Q3_K)]
    [InlineData(ElementType.Q4_K)]
    [InlineData(ElementType.Q5_K)]
    [InlineData(ElementType.Q6_K)]
    public void Zero_values_quantize_to_a_block_that_reads_back_as_zeros(ElementType type)
    {
        var bytes = new byte[type.BlockBytes()];
        Quantization.Quantize(type, new float[type.BlockLength()], bytes);
        Assert.True(type.Format().IsZero(bytes));
        var values = new float[type.BlockLength()];
        Quantization.Dequantize(type, bytes, values);
        Assert.All(values, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void Q2_K_is_read_but_not_written()
    {
        Assert.False(ElementType.Q2_K.Format().CanQuantize);
        Assert.Contains("Q2_K", Assert.Throws<NotSupportedException>(() => Quantization.Quantize(ElementType.Q2_K, new float[256], new byte[84])).Message);
    }
}
