namespace Kangaroo.Native.Numerics;

/// <summary>Q4_1, 20 bytes per 32 values: an f16 scale d and an f16 min m, then 16 bytes of nibbles,
/// value j in the low nibble of byte j and value 16 + j in its high nibble; value = q * d + m.
/// Reference quantization: d = (max - min) / 15, q = min(15, trunc((x - min) * (1 / d) + 0.5)) with the
/// float32 d and min; the stored d and m are rounded to f16.</summary>
public sealed class Q4_1Format() : BlockFormat(ElementType.Q4_1, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 32;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 4 + BlockLength / 2;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        var m = BlockScales.ReadF16(block[2..]);
        for (var j = 0; j < BlockLength / 2; j++)
        {
            values[j] = (block[4 + j] & 0xF) * d + m;
            values[BlockLength / 2 + j] = (block[4 + j] >> 4) * d + m;
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        var (min, max) = GgmlRounding.Range(values[..BlockLength]);
        var d = (max - min) / 15;
        var inverse = d != 0f ? 1f / d : 0f;
        BlockScales.WriteF16(block, d, Type);
        BlockScales.WriteF16(block[2..], min, Type);
        for (var j = 0; j < BlockLength / 2; j++)
        {
            var low = Math.Min(15, (int)((values[j] - min) * inverse + 0.5f));
            var high = Math.Min(15, (int)((values[BlockLength / 2 + j] - min) * inverse + 0.5f));
            block[4 + j] = (byte)(low | high << 4);
        }
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block) || BlockScales.IsNonFiniteF16(block[2..]);
}
