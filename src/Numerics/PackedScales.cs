namespace Kangaroo.Native.Numerics;

/// <summary>The packed sub-block scales of the K-quant super-blocks, as ggml lays them out in 12 bytes.</summary>
public static class PackedScales
{
    /// <summary>Q4_K and Q5_K: sub-block j's 6-bit scale and min (get_scale_min_k4). Sub-blocks 0-3 keep
    /// theirs in the low 6 bits of bytes j (scale) and j + 4 (min); sub-blocks 4-7 keep their low 4 bits in
    /// byte j + 4 (scale low, min high nibble) and their top 2 bits in the top bits of bytes j - 4 (scale)
    /// and j (min).</summary>
    public static (int Scale, int Min) ScaleAndMin(ReadOnlySpan<byte> packed, int j) => j < 4
        ? (packed[j] & 63, packed[j + 4] & 63)
        : (packed[j + 4] & 0xF | packed[j - 4] >> 6 << 4, packed[j + 4] >> 4 | packed[j] >> 6 << 4);

    /// <summary>Writes sub-block j's scale and min (each 0..63) as <see cref="ScaleAndMin"/> reads them;
    /// sub-blocks 0-3 before 4-7, as ggml's quantizer does.</summary>
    public static void PackScaleAndMin(Span<byte> packed, int j, int scale, int min)
    {
        if (j < 4)
        {
            packed[j] = (byte)scale;
            packed[j + 4] = (byte)min;
        }
        else
        {
            packed[j + 4] = (byte)(scale & 0xF | (min & 0xF) << 4);
            packed[j - 4] |= (byte)(scale >> 4 << 6);
            packed[j] |= (byte)(min >> 4 << 6);
        }
    }

    /// <summary>Q3_K: sub-block j's 6-bit scale, stored offset by 32 (so the value is -32..31). Its low 4
    /// bits are the low nibble of byte j (j &lt; 8) or the high nibble of byte j - 8; its top 2 bits are bits
    /// 2 (j / 4) of byte 8 + j % 4.</summary>
    public static int SignedScale(ReadOnlySpan<byte> packed, int j) =>
        ((j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4) | (packed[8 + j % 4] >> (2 * (j / 4)) & 3) << 4) - 32;
}
