namespace Kangaroo.Native.Numerics;

/// <summary>
/// Q2_K, 84 bytes per super-block of 256 values: 16 bytes holding the 4-bit scale sc_j (low nibble) and
/// min m_j (high nibble) of each of its 16 sub-blocks of 16, 64 bytes qs of 2-bit quants, then f16 d and
/// dmin. Value v (half h = v / 128, r = v % 128, k = r / 32, l = r % 32) has its quant at bit 2k of
/// qs[32h + l]; value = (d sc_(v/16)) q - (dmin m_(v/16)). Read only: llama.cpp's standard mixes write it
/// (Q2_K), and its quantizer is not transcribed here.
/// </summary>
public sealed class Q2_KFormat() : BlockFormat(ElementType.Q2_K, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 256;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 16 + BlockLength / 4 + 4;

    /// <inheritdoc/>
    public override bool CanQuantize => false;

    /// <summary>The 2-bit quant (0..3) of value <paramref name="v"/>.</summary>
    public static int Quant(ReadOnlySpan<byte> block, int v) => block[16 + 32 * (v / 128) + v % 32] >> 2 * (v % 128 / 32) & 3;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block[80..]);
        var dmin = BlockScales.ReadF16(block[82..]);
        for (var v = 0; v < BlockLength; v++)
        {
            var scales = block[v / 16];
            values[v] = d * (scales & 0xF) * Quant(block, v) - dmin * (scales >> 4);
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block) => throw new NotSupportedException("quantizing to Q2_K is not implemented");

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block[80..]) || BlockScales.IsNonFiniteF16(block[82..]);
}
