using System.Buffers.Binary;

namespace Kangaroo.Native.Numerics;

/// <summary>Q5_0, 22 bytes per 32 values: an f16 scale d, 4 bytes qh holding the fifth bit of value j in
/// bit j (little-endian), then 16 bytes of nibbles, value j in the low nibble of byte j and value 16 + j
/// in its high nibble; value = (q - 16) * d. Reference quantization: d = m / -16 where m is the first value
/// of largest magnitude (with its sign), q = min(31, trunc(x * (1 / d) + 16.5)), with the float32 d; the
/// stored d is rounded to f16.</summary>
public sealed class Q5_0Format() : BlockFormat(ElementType.Q5_0, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 32;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 6 + BlockLength / 2;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        var high = BinaryPrimitives.ReadUInt32LittleEndian(block[2..]);
        for (var j = 0; j < BlockLength / 2; j++)
        {
            values[j] = ((block[6 + j] & 0xF | (int)(high >> j & 1) << 4) - 16) * d;
            values[BlockLength / 2 + j] = ((block[6 + j] >> 4 | (int)(high >> (BlockLength / 2 + j) & 1) << 4) - 16) * d;
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        var max = GgmlRounding.FirstLargest(values[..BlockLength], out _);
        var d = max / -16f;
        var inverse = d != 0f ? 1f / d : 0f;
        BlockScales.WriteF16(block, d, Type);
        var high = 0u;
        for (var j = 0; j < BlockLength / 2; j++)
        {
            var low = Math.Min(31, (int)(values[j] * inverse + 16.5f));
            var upper = Math.Min(31, (int)(values[BlockLength / 2 + j] * inverse + 16.5f));
            block[6 + j] = (byte)(low & 0xF | (upper & 0xF) << 4);
            high |= (uint)(low >> 4) << j | (uint)(upper >> 4) << (BlockLength / 2 + j);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(block[2..], high);
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block);
}
