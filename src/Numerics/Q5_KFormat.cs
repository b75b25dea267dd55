namespace Kangaroo.Native.Numerics;

/// <summary>
/// Q5_K, 176 bytes per super-block of 256 values: f16 d and dmin, the 6-bit scales sc_j and mins m_j of
/// its 8 sub-blocks of 32 in 12 bytes (<see cref="PackedScales.ScaleAndMin"/>), 32 bytes qh whose bit j of
/// byte i is the fifth bit of value i of sub-block j, then 128 bytes of nibbles laid out as Q4_K's.
/// Value i of sub-block j = (d sc_j) q_i - (dmin m_j), q in 0..31.
/// Reference quantization (quantize_row_q5_K_ref): as Q4_K's (<see cref="Q4_KFormat"/>) with 31 levels
/// and its own search of candidate scales.
/// </summary>
public sealed class Q5_KFormat() : BlockFormat(ElementType.Q5_K, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 256;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 4 + 12 + BlockLength / 8 + BlockLength / 2;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        var dmin = BlockScales.ReadF16(block[2..]);
        var high = block.Slice(16, 32);
        for (var j = 0; j < 8; j++)
        {
            var (scale, min) = PackedScales.ScaleAndMin(block[4..16], j);
            var (a, b) = (d * scale, dmin * min);
            var low = block.Slice(48 + 32 * (j / 2), 32);
            for (var i = 0; i < 32; i++) values[32 * j + i] = a * ((low[i] >> 4 * (j % 2) & 0xF) + (high[i] >> j & 1) * 16) - b;
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        Span<byte> levels = stackalloc byte[BlockLength];
        Q4_KFormat.QuantizeSubBlocks(values, block[..16], levels, nmax: 31, rmin: -0.5f, rdelta: 0.1f, nstep: 15, Type);
        var high = block.Slice(16, 32);
        high.Clear();
        for (var c = 0; c < 4; c++)
        for (var i = 0; i < 32; i++)
        {
            var (first, second) = (levels[64 * c + i], levels[64 * c + 32 + i]);
            high[i] |= (byte)((first >> 4) << 2 * c | (second >> 4) << 2 * c + 1);
            block[48 + 32 * c + i] = (byte)(first & 0xF | (second & 0xF) << 4);
        }
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block) || BlockScales.IsNonFiniteF16(block[2..]);
}
