namespace Kangaroo.Native.Numerics;

/// <summary>
/// Q3_K, 110 bytes per super-block of 256 values: 32 bytes hmask of high bits, 64 bytes qs of 2-bit
/// quants, the 6-bit signed scales sc_j of its 16 sub-blocks of 16 in 12 bytes
/// (<see cref="PackedScales.SignedScale"/>), then an f16 d. Value v (half h = v / 128, r = v % 128,
/// k = r / 32, l = r % 32) has its low 2 bits at bit 2k of qs[32h + l] and its high bit at bit 4h + k of
/// hmask[l]; value = (d sc_(v/16)) (q - 4).
/// Reference quantization (quantize_row_q3_K_ref): each sub-block's scale fitted by refined least squares
/// (make_q3_quants), scales quantized to 6 bits against the largest (d = -max / 32, rounded to f16), then
/// q = clamp(round(x / (d sc_j)), -4, 3) + 4.
/// </summary>
public sealed class Q3_KFormat() : BlockFormat(ElementType.Q3_K, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 256;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = BlockLength / 8 + BlockLength / 4 + 12 + 2;

    /// <summary>The 3-bit quant (0..7) of value <paramref name="v"/>.</summary>
    public static int Quant(ReadOnlySpan<byte> block, int v)
    {
        var (h, k, l) = (v / 128, v % 128 / 32, v % 32);
        return (block[32 + 32 * h + l] >> 2 * k & 3) | (block[l] >> 4 * h + k & 1) << 2;
    }

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block[108..]);
        for (var v = 0; v < BlockLength; v++) values[v] = d * PackedScales.SignedScale(block[96..108], v / 16) * (Quant(block, v) - 4);
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        Span<sbyte> levels = stackalloc sbyte[BlockLength];
        Span<float> scales = stackalloc float[16];
        var (maxScale, amax) = (0f, 0f);
        for (var j = 0; j < 16; j++)
        {
            scales[j] = GgmlRounding.RefinedSymmetricQuants(4, values.Slice(16 * j, 16), levels.Slice(16 * j, 16));
            if (MathF.Abs(scales[j]) > amax) (amax, maxScale) = (MathF.Abs(scales[j]), scales[j]);
        }
        block[..BlockBytes].Clear();
        var packed = block[96..108];
        if (maxScale != 0)
        {
            var iscale = -32f / maxScale;
            for (var j = 0; j < 16; j++)
            {
                var l = Math.Clamp((int)(sbyte)GgmlRounding.NearestInt(iscale * scales[j]), -32, 31) + 32;
                if (j < 8) packed[j] = (byte)(l & 0xF);
                else packed[j - 8] |= (byte)((l & 0xF) << 4);
                packed[8 + j % 4] |= (byte)(l >> 4 << 2 * (j / 4));
            }
            BlockScales.WriteF16(block[108..], 1 / iscale, Type);
        }
        var d = BlockScales.ReadF16(block[108..]);
        for (var j = 0; j < 16; j++)
        {
            var step = d * PackedScales.SignedScale(packed, j);
            if (step == 0) continue; // the fitted quants stay, as in ggml
            for (var i = 0; i < 16; i++) levels[16 * j + i] = (sbyte)(Math.Clamp(GgmlRounding.NearestInt(values[16 * j + i] / step), -4, 3) + 4);
        }
        for (var v = 0; v < BlockLength; v++)
        {
            var (h, k, l) = (v / 128, v % 128 / 32, v % 32);
            block[32 + 32 * h + l] |= (byte)((levels[v] & 3) << 2 * k);
            block[l] |= (byte)((levels[v] >> 2 & 1) << 4 * h + k);
        }
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block[108..]);
}
