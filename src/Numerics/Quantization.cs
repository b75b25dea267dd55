namespace Kangaroo.Native.Numerics;

/// <summary>The block formats over whole rows: a span of values or bytes that is a whole number of
/// blocks of a quantized <see cref="ElementType"/>, one block after another.</summary>
public static class Quantization
{
    /// <summary>Quantizes <paramref name="values"/> into <paramref name="destination"/>; a block holding
    /// a NaN or infinity, or needing a scale the format cannot hold, is refused naming its index.</summary>
    public static void Quantize(ElementType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        var format = type.Format();
        if (!format.CanQuantize) throw new NotSupportedException($"quantizing to {type} is not implemented");
        var blocks = CheckBlocks(format, values.Length, destination.Length);
        for (var b = 0; b < blocks; b++)
        {
            var x = values.Slice(b * format.BlockLength, format.BlockLength);
            foreach (var v in x)
                if (!float.IsFinite(v)) throw new ArgumentException($"block {b} holds a NaN or infinity, which {type} cannot represent", nameof(values));
            try
            {
                format.Quantize(x, destination.Slice(b * format.BlockBytes, format.BlockBytes));
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"block {b}: {e.Message}", nameof(values));
            }
        }
    }

    /// <summary>The values of quantized blocks, exactly as the format defines them.</summary>
    public static void Dequantize(ElementType type, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        var format = type.Format();
        var blocks = CheckBlocks(format, destination.Length, bytes.Length);
        for (var b = 0; b < blocks; b++)
            format.Dequantize(bytes.Slice(b * format.BlockBytes, format.BlockBytes), destination.Slice(b * format.BlockLength, format.BlockLength));
    }

    /// <summary>Blocks with a NaN or infinite scale: each makes its values non-finite.</summary>
    public static long CountNonFiniteBlocks(ElementType type, ReadOnlySpan<byte> bytes)
    {
        var format = type.Format();
        long count = 0;
        for (var offset = 0; offset + format.BlockBytes <= bytes.Length; offset += format.BlockBytes)
            if (format.HasNonFiniteScale(bytes.Slice(offset, format.BlockBytes))) count++;
        return count;
    }

    /// <summary>True when every block's values are zero.</summary>
    public static bool IsAllZero(ElementType type, ReadOnlySpan<byte> bytes)
    {
        var format = type.Format();
        for (var offset = 0; offset + format.BlockBytes <= bytes.Length; offset += format.BlockBytes)
            if (!format.IsZero(bytes.Slice(offset, format.BlockBytes))) return false;
        return true;
    }

    /// <summary>Blocks of <paramref name="values"/> values, checked against the bytes they take.</summary>
    private static int CheckBlocks(IBlockFormat format, int values, int bytes)
    {
        if (values % format.BlockLength != 0)
            throw new ArgumentException($"{values} values are not a whole number of {format.Type} blocks of {format.BlockLength}");
        var blocks = values / format.BlockLength;
        if ((long)blocks * format.BlockBytes != bytes)
            throw new ArgumentException($"{blocks} {format.Type} blocks take {(long)blocks * format.BlockBytes} bytes, not {bytes}");
        return blocks;
    }
}
