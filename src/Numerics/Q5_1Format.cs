using System.Buffers.Binary;

namespace Kangaroo.Native.Numerics;

/// <summary>Q5_1, 24 bytes per 32 values: an f16 scale d and an f16 min m, 4 bytes qh holding the fifth
/// bit of value j in bit j (little-endian), then 16 bytes of nibbles, value j in the low nibble of byte j
/// and value 16 + j in its high nibble; value = q * d + m. Reference quantization: d = (max - min) / 31,
/// q = trunc((x - min) * (1 / d) + 0.5) with the float32 d and min; the stored d and m are rounded to f16.</summary>
public sealed class Q5_1Format() : BlockFormat(ElementType.Q5_1, BlockLength, BlockBytes)
{
    /// <summary>Values per block.</summary>
    public const int BlockLength = 32;
    /// <summary>Bytes per block.</summary>
    public const int BlockBytes = 8 + BlockLength / 2;

    /// <inheritdoc/>
    public override void Dequantize(ReadOnlySpan<byte> block, Span<float> values)
    {
        var d = BlockScales.ReadF16(block);
        var m = BlockScales.ReadF16(block[2..]);
        var high = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
        for (var j = 0; j < BlockLength / 2; j++)
        {
            values[j] = (block[8 + j] & 0xF | (int)(high >> j & 1) << 4) * d + m;
            values[BlockLength / 2 + j] = (block[8 + j] >> 4 | (int)(high >> (BlockLength / 2 + j) & 1) << 4) * d + m;
        }
    }

    /// <inheritdoc/>
    public override void Quantize(ReadOnlySpan<float> values, Span<byte> block)
    {
        var (min, max) = GgmlRounding.Range(values[..BlockLength]);
        var d = (max - min) / 31;
        var inverse = d != 0f ? 1f / d : 0f;
        BlockScales.WriteF16(block, d, Type);
        BlockScales.WriteF16(block[2..], min, Type);
        var high = 0u;
        for (var j = 0; j < BlockLength / 2; j++)
        {
            var low = (byte)((values[j] - min) * inverse + 0.5f);
            var upper = (byte)((values[BlockLength / 2 + j] - min) * inverse + 0.5f);
            block[8 + j] = (byte)(low & 0xF | (upper & 0xF) << 4);
            high |= (uint)(low >> 4 & 1) << j | (uint)(upper >> 4 & 1) << (BlockLength / 2 + j);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(block[4..], high);
    }

    /// <inheritdoc/>
    public override bool HasNonFiniteScale(ReadOnlySpan<byte> block) => BlockScales.IsNonFiniteF16(block) || BlockScales.IsNonFiniteF16(block[2..]);
}
