namespace Kangaroo.Native.Tests.Numerics;

/// <summary>llama.cpp's reference Q8_0/Q4_0 rounding on blocks whose results are known by hand, and
/// the byte counts and refusals that follow from blocks of 32 along a row.</summary>
public sealed class QuantizationTests
{
    private static byte[] Quantize(ElementType type, float[] values)
    {
        var bytes = new byte[type.ByteCount(values.Length)];
        Quantization.Quantize(type, values, bytes);
        return bytes;
    }

    private static float[] Dequantize(ElementType type, byte[] bytes) => new TensorData(type, [bytes.Length / type.BlockBytes() * 32], bytes).ToFloats();

    [Fact]
    public void Q8_0_scale_is_amax_over_127_and_quants_round_half_away_from_zero()
    {
        var x = new float[32];
        (x[0], x[1], x[2], x[3], x[4], x[5], x[6]) = (127f, -127f, 0.5f, -0.5f, 1.5f, 2.49f, -2.5f);
        var bytes = Quantize(ElementType.Q8_0, x);
        Assert.Equal(34, bytes.Length);
        Assert.Equal((Half)1f, BitConverter.ToHalf(bytes, 0));
        Assert.Equal(new sbyte[] { 127, -127, 1, -1, 2, 2, -3, 0 }, bytes[2..10].Select(b => (sbyte)b));
        Assert.Equal(new[] { 127f, -127f, 1f, -1f, 2f, 2f, -3f, 0f }, Dequantize(ElementType.Q8_0, bytes)[..8]);
    }

    [Fact]
    public void Q4_0_scale_is_the_largest_value_over_minus_8_with_nibbles_low_then_high()
    {
        var x = new float[32];
        // d = -8 / -8 = 1: q = min(15, trunc(x + 8.5)); the first value of largest magnitude sets the sign.
        (x[0], x[1], x[2], x[3], x[4], x[16], x[17]) = (-8f, 8f, 7.9f, -0.6f, 0.5f, 2.4f, -3.5f);
        var bytes = Quantize(ElementType.Q4_0, x);
        Assert.Equal(18, bytes.Length);
        Assert.Equal((Half)1f, BitConverter.ToHalf(bytes, 0));
        int Low(int j) => bytes[2 + j] & 0xF;
        int High(int j) => bytes[2 + j] >> 4;
        Assert.Equal(new[] { 0, 15, 15, 7, 9, 8 }, new[] { Low(0), Low(1), Low(2), Low(3), Low(4), Low(5) });
        Assert.Equal(new[] { 10, 5, 8 }, new[] { High(0), High(1), High(2) });
        var values = Dequantize(ElementType.Q4_0, bytes);
        Assert.Equal(new[] { -8f, 7f, 7f, -1f, 1f, 0f }, values[..6]);
        Assert.Equal(new[] { 2f, -3f, 0f }, values[16..19]);

        x[0] = 0; // now +8 is the largest: d = -1, and 8 maps to nibble 0
        bytes = Quantize(ElementType.Q4_0, x);
        Assert.Equal((Half)(-1f), BitConverter.ToHalf(bytes, 0));
        Assert.Equal(0, bytes[3] & 0xF);
        Assert.Equal(8f, Dequantize(ElementType.Q4_0, bytes)[1]);
    }

    [Theory]
    [InlineData(ElementType.Q8_0)]
    [InlineData(ElementType.Q4_0)]
    public void Zero_blocks_have_zero_scale_and_read_back_as_zeros(ElementType type)
    {
        var bytes = Quantize(type, new float[64]);
        Assert.Equal(0, BitConverter.ToUInt16(bytes, 0) & 0x7FFF); // Q4_0: 0 / -8 = -0, as ggml stores it
        Assert.All(Dequantize(type, bytes), v => Assert.Equal(0f, v));
        Assert.True(new TensorData(type, [2, 32], bytes).IsAllZero);
        Assert.False(new TensorData(type, [1, 64], Quantize(type, Enumerable.Range(0, 64).Select(i => i / 64f).ToArray())).IsAllZero);
    }

    [Theory]
    [InlineData(ElementType.Q8_0, 2e-4f)]
    [InlineData(ElementType.Q4_0, 2e-4f)]
    [InlineData(ElementType.Q8_0, 3f)]
    [InlineData(ElementType.Q4_0, 3f)]
    public void Dequantized_values_are_the_f16_scale_times_the_quant_and_close_to_the_input(ElementType type, float magnitude)
    {
        var random = new Random(5);
        var x = Enumerable.Range(0, 96).Select(_ => (float)(random.NextDouble() * 2 - 1) * magnitude).ToArray();
        var bytes = Quantize(type, x);
        var values = Dequantize(type, bytes);
        for (var b = 0; b < 3; b++)
        {
            var d = (float)BitConverter.ToHalf(bytes, b * type.BlockBytes());
            if (magnitude < 1e-3f) Assert.True(Half.IsSubnormal((Half)d), $"scale {d} of block {b} should be an f16 subnormal");
            for (var j = 0; j < 32; j++)
            {
                var i = b * 32 + j;
                var step = MathF.Abs(d) * (type == ElementType.Q8_0 ? 0.5f : 1f);
                // Half a quantization step, plus the rounding of d to f16 (relative 2^-11, or 2^-25 absolute below 2^-14) times q.
                var tolerance = step * 1.01f + MathF.Abs(values[i]) / 1024 + 128 * 3e-8f;
                Assert.True(MathF.Abs(values[i] - x[i]) <= tolerance, $"value {i}: {values[i]} vs {x[i]} (d = {d})");
                Assert.Equal(0f, MathF.IEEERemainder(values[i], d == 0 ? 1 : d));
            }
        }
    }

    [Fact]
    public void Rows_that_are_not_whole_blocks_are_refused_naming_the_length()
    {
        var e = Assert.Throws<ArgumentException>(() => ElementType.Q8_0.ByteCount(3, 40));
        Assert.Contains("40", e.Message);
        Assert.Contains("32", e.Message);
        var values = new float[2 * 48];
        e = Assert.Throws<ArgumentException>(() => CheckpointConverter.Encode(TensorData.FromFloats(values, 2, 48), ElementType.Q4_0));
        Assert.Contains("48", e.Message);
        e = Assert.Throws<ArgumentException>(() => ElementType.Q4_0.RowBytes(100));
        Assert.Contains("100", e.Message);
    }

    [Fact]
    public void Byte_counts_follow_the_block_layout()
    {
        Assert.Equal(3 * 2 * 34, ElementType.Q8_0.ByteCount(3, 64));
        Assert.Equal(3 * 2 * 18, ElementType.Q4_0.ByteCount(3, 64));
        Assert.Equal(3 * 64 * 2, ElementType.BF16.ByteCount(3, 64));
        Assert.Equal(2 * 34, ElementType.Q8_0.RowBytes(64));
        Assert.Equal(2 * 18, ElementType.Q4_0.RowBytes(64));
        Assert.Equal(192, new TensorData(ElementType.Q4_0, [2, 96], new byte[2 * 3 * 18]).ElementCount);
    }

    [Fact]
    public void A_non_finite_scale_makes_its_whole_block_non_finite()
    {
        var bytes = Quantize(ElementType.Q8_0, Enumerable.Range(0, 96).Select(i => (float)i).ToArray());
        BitConverter.GetBytes((ushort)0x7C00).CopyTo(bytes, 34); // +inf scale on block 1
        Assert.Equal(32, new TensorData(ElementType.Q8_0, [96], bytes).CountNonFinite());
    }

    [Fact]
    public void Values_that_quantization_cannot_represent_are_refused()
    {
        var x = new float[32];
        x[3] = float.NaN;
        Assert.Contains("NaN", Assert.Throws<ArgumentException>(() => Quantize(ElementType.Q8_0, x)).Message);
        x[3] = 1e9f; // d = 1e9 / 127 overflows f16
        Assert.Contains("f16", Assert.Throws<ArgumentException>(() => Quantize(ElementType.Q8_0, x)).Message);
    }

    [Fact]
    public void Safetensors_refuses_quantized_tensors()
    {
        Assert.Throws<NotSupportedException>(() => new SafeTensorSpec("w", ElementType.Q8_0, [1, 32]));
        Assert.Throws<NotSupportedException>(() => ElementType.Q4_0.SafeTensorsName());
    }
}
