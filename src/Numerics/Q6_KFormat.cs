namespace Kangaroo.Native.Numerics;

/// <summary>
/// Q6_K, 210 bytes per super-block of 256 values: 128 bytes ql of low nibbles, 64 bytes qh of 2-bit pairs,
/// 16 int8 scales sc_j of its 16 sub-blocks of 16, then an f16 d. Value v (half h = v / 128, r = v % 128,
/// k = r / 32, l = r % 32) has its low 4 bits in ql[64h + 32 (k % 2) + l] (low nibble for k &lt; 2, high
/// for k &gt;= 2), its top 2 bits at bit 2k of qh[32h + l], and value = (d sc_(v/16)) (q - 32).
/// Reference quantization (quantize_row_q6_K_ref): each sub-block's scale fitted by weighted least squares
/// (make_qx_quants), scales quantized to int8 against the largest (d = -max / 128, rounded to f16), then
/// q = clamp(round(x / (d sc_j)), -32, 31) + 32.
/// </summary>
public sealed class Q6_KFormat() : BlockFormat(ElementType.Q6_K, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 256;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = BlockLength / 2 + BlockLength / 4 + 16 + 2;

    /// <summary>The 6-bit quant (0..63) of value <paramref name="v"/>.</summary>
    public static int Quant(ReadOnlySpan<byte> block, int v)
    {
        var (h, k, l) = (v / 128, v % 128 / 32, v % 32);
        var low = block[64 * h + 32 * (k % 2) + l] >> 4 * (k / 2) & 0xF;
        return low | (block[128 + 32 * h + l] >> 2 * k & 3) << 4;
    }

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block[208..]);
        for (var v = 0; v < BlockLength; v++) values[v] = d * (sbyte)block[192 + v / 16] * (Quant(block, v) - 32);
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        Span<sbyte> levels = stackalloc sbyte[BlockLength];
        Span<float> scales = stackalloc float[16];
        var (maxScale, maxAbsScale) = (0f, 0f);
        for (var j = 0; j < 16; j++)
        {
            scales[j] = GgmlRounding.SymmetricQuants(32, values.Slice(16 * j, 16), levels.Slice(16 * j, 16));
            if (MathF.Abs(scales[j]) > maxAbsScale) (maxAbsScale, maxScale) = (MathF.Abs(scales[j]), scales[j]);
        }
        block[..BlockBytes].Clear();
        if (maxAbsScale < 1e-15f) return; // GROUP_MAX_EPS: an all-zero block
        var iscale = -128f / maxScale;
        BlockScales.WriteF16(block[208..], 1 / iscale, Type);
        for (var j = 0; j < 16; j++) block[192 + j] = (byte)(sbyte)Math.Min(127, GgmlRounding.NearestInt(iscale * scales[j]));
        var d = BlockScales.ReadF16(block[208..]);
        for (var j = 0; j < 16; j++)
        {
            var step = d * (sbyte)block[192 + j];
            if (step == 0) continue; // the fitted quants stay, as in ggml
            for (var i = 0; i < 16; i++) levels[16 * j + i] = (sbyte)(Math.Clamp(GgmlRounding.NearestInt(values[16 * j + i] / step), -32, 31) + 32);
        }
        for (var v = 0; v < BlockLength; v++)
        {
            var (h, k, l) = (v / 128, v % 128 / 32, v % 32);
            block[64 * h + 32 * (k % 2) + l] |= (byte)((levels[v] & 0xF) << 4 * (k / 2));
            block[128 + 32 * h + l] |= (byte)((levels[v] >> 4) << 2 * k);
        }
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block[208..]);
}
