namespace Kangaroo.Native.Numerics;

/// <summary>
/// Q4_K, 144 bytes per super-block of 256 values: f16 d and dmin, the 6-bit scales sc_j and mins m_j of
/// its 8 sub-blocks of 32 in 12 bytes (<see cref="PackedScales.ScaleAndMin"/>), then 128 bytes of nibbles:
/// sub-block 2c in the low nibbles of bytes 32c..32c + 31, sub-block 2c + 1 in their high nibbles.
/// Value i of sub-block j = (d sc_j) q_i - (dmin m_j).
/// Reference quantization (quantize_row_q4_K_ref): each sub-block's scale and min fitted by weighted least
/// squares (weights rms + |x|), quantized to 6 bits against the largest of each (d = max scale / 63,
/// dmin = max min / 63, rounded to f16), then q = clamp(round((x + dmin m_j) / (d sc_j)), 0, 15).
/// </summary>
public sealed class Q4_KFormat() : BlockFormat(ElementType.Q4_K, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 256;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 4 + 12 + BlockLength / 2;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        var dmin = BlockScales.ReadF16(block[2..]);
        for (var j = 0; j < 8; j++)
        {
            var (scale, min) = PackedScales.ScaleAndMin(block[4..16], j);
            var (a, b) = (d * scale, dmin * min);
            var quants = block.Slice(16 + 32 * (j / 2), 32);
            for (var i = 0; i < 32; i++) values[32 * j + i] = a * (quants[i] >> 4 * (j % 2) & 0xF) - b;
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        Span<byte> levels = stackalloc byte[BlockLength];
        QuantizeSubBlocks(values, block[..16], levels, nmax: 15, rmin: -1f, rdelta: 0.1f, nstep: 20, Type);
        for (var c = 0; c < 4; c++)
        for (var i = 0; i < 32; i++)
            block[16 + 32 * c + i] = (byte)(levels[64 * c + i] | levels[64 * c + 32 + i] << 4);
    }

    /// <summary>What Q4_K and Q5_K share (quantize_row_q4_K_ref, quantize_row_q5_K_ref up to the packing of
    /// the quants): writes d, dmin and the packed scales and mins into <paramref name="header"/> (16 bytes)
    /// and sets each value's quant (0..nmax) in <paramref name="levels"/>.</summary>
    internal static void QuantizeSubBlocks(ReadOnlySpan<float> x, Span<byte> header, Span<byte> levels, int nmax, float rmin, float rdelta, int nstep,
        ElementType type)
    {
        Span<float> weights = stackalloc float[32];
        Span<float> scales = stackalloc float[8];
        Span<float> mins = stackalloc float[8];
        var (maxScale, maxMin) = (0f, 0f);
        for (var j = 0; j < 8; j++)
        {
            var sub = x.Slice(32 * j, 32);
            var sumOfSquares = 0f;
            foreach (var v in sub) sumOfSquares += v * v;
            var rms = MathF.Sqrt(sumOfSquares / 32);
            for (var i = 0; i < 32; i++) weights[i] = rms + MathF.Abs(sub[i]);
            scales[j] = GgmlRounding.AffineQuants(nmax, sub, weights, levels.Slice(32 * j, 32), out mins[j], rmin, rdelta, nstep);
            if (scales[j] > maxScale) maxScale = scales[j];
            if (mins[j] > maxMin) maxMin = mins[j];
        }
        var inverseScale = maxScale > 0 ? 63f / maxScale : 0f;
        var inverseMin = maxMin > 0 ? 63f / maxMin : 0f;
        var packed = header[4..16];
        for (var j = 0; j < 8; j++)
            PackedScales.PackScaleAndMin(packed, j, Math.Min(63, (int)(byte)GgmlRounding.NearestInt(inverseScale * scales[j])),
                Math.Min(63, (int)(byte)GgmlRounding.NearestInt(inverseMin * mins[j])));
        BlockScales.WriteF16(header, maxScale / 63f, type);
        BlockScales.WriteF16(header[2..], maxMin / 63f, type);
        var d = BlockScales.ReadF16(header);
        var dmin = BlockScales.ReadF16(header[2..]);
        for (var j = 0; j < 8; j++)
        {
            var (scale, min) = PackedScales.ScaleAndMin(packed, j);
            var step = d * scale;
            if (step == 0) continue; // the fitted quants stay, as in ggml
            var offset = dmin * min;
            for (var i = 0; i < 32; i++) levels[32 * j + i] = (byte)Math.Clamp(GgmlRounding.NearestInt((x[32 * j + i] + offset) / step), 0, nmax);
        }
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block) || BlockScales.IsNonFiniteF16(block[2..]);
}
