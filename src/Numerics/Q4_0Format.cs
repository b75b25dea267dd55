namespace Kangaroo.Native.Numerics;

/// <summary>Q4_0, 18 bytes per 32 values: an f16 scale d, then 16 bytes of nibbles, value j in the low
/// nibble of byte j and value 16 + j in its high nibble; value = d * (q - 8). Reference quantization:
/// d = m / -8 where m is the first value of largest magnitude (with its sign),
/// q = min(15, trunc(x * (1 / d) + 8.5)), with the float32 d; the stored d is rounded to f16.</summary>
public sealed class Q4_0Format() : BlockFormat(ElementType.Q4_0, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 32;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 2 + BlockLength / 2;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        for (var j = 0; j < BlockLength / 2; j++)
        {
            values[j] = d * ((block[2 + j] & 0xF) - 8);
            values[BlockLength / 2 + j] = d * ((block[2 + j] >> 4) - 8);
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        var max = GgmlRounding.FirstLargest(values[..BlockLength], out _);
        var d = max / -8f;
        var inverse = d != 0f ? 1f / d : 0f;
        BlockScales.WriteF16(block, d, Type);
        for (var j = 0; j < BlockLength / 2; j++)
        {
            var low = Math.Min(15, (int)(values[j] * inverse + 8.5f));
            var high = Math.Min(15, (int)(values[BlockLength / 2 + j] * inverse + 8.5f));
            block[2 + j] = (byte)(low | high << 4);
        }
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block);

    /// <summary>A zero scale (either sign), or quants that are all 8 (both nibbles of every byte).</summary>
    public override bool IsZero(ReadOnlySpan<byte> block) => BlockScales.IsZeroF16(block) || !block[2..BlockBytes].ContainsAnyExcept((byte)0x88);
}
