namespace Kangaroo.Native.Numerics;

/// <summary>Q8_0, 34 bytes per 32 values: an f16 scale d, then 32 int8 quants q; value j = d * q[j]
/// (exact in float32: 11 + 8 significant bits). Reference quantization: d = amax / 127,
/// q = round(x * (1 / d)) half away from zero, with the float32 d; the stored d is rounded to f16.</summary>
public sealed class Q8_0Format() : BlockFormat(ElementType.Q8_0, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 32;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 2 + BlockLength;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        for (var j = 0; j < BlockLength; j++) values[j] = d * (sbyte)block[2 + j];
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        var amax = 0f;
        foreach (var v in values[..BlockLength]) amax = MathF.Max(amax, MathF.Abs(v));
        var d = amax / 127f;
        var inverse = d != 0f ? 1f / d : 0f;
        BlockScales.WriteF16(block, d, Type);
        for (var j = 0; j < BlockLength; j++)
            block[2 + j] = (byte)(sbyte)MathF.Round(values[j] * inverse, MidpointRounding.AwayFromZero);
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block);

    /// <summary>A zero scale (either sign), or quants that are all 0.</summary>
    public override bool IsZero(ReadOnlySpan<byte> block) => BlockScales.IsZeroF16(block) || !block[2..BlockBytes].ContainsAnyExcept((byte)0);
}
