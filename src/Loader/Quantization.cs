using System.Buffers.Binary;

namespace Kangaroo.Native.Loader;

/// <summary>
/// llama.cpp's block quantization, reference rounding (ggml's <c>quantize_row_q8_0_ref</c> and
/// <c>quantize_row_q4_0_ref</c>). A row is cut into blocks of 32 values; each block is an f16 scale d
/// followed by its quants:
/// <list type="bullet">
/// <item>Q8_0, 34 bytes: d = amax / 127, q = round(x * (1 / d)) (half away from zero) as 32 int8;
/// value = d * q.</item>
/// <item>Q4_0, 18 bytes: d = m / -8 where m is the block's value of largest magnitude,
/// q = min(15, trunc(x * (1 / d) + 8.5)) as 16 bytes: element j in the low nibble of byte j and
/// element 16 + j in its high nibble; value = d * (q - 8).</item>
/// </list>
/// The quants are computed with the float32 d and the value uses d rounded to f16, as ggml does. A
/// dequantized value d * q is exact in float32 (11 + 8 significant bits), so any kernel that forms it
/// gets the same number.
/// </summary>
public static class Quantization
{
    /// <summary>Values per block of either type.</summary>
    public const int BlockLength = 32;

    /// <summary>Quantizes <paramref name="values"/> (a whole number of blocks: rows whose length is a
    /// multiple of 32, one after another) into <paramref name="destination"/>.</summary>
    public static void Quantize(DType type, ReadOnlySpan<float> values, Span<byte> destination)
    {
        var blocks = CheckBlocks(type, values.Length, destination.Length);
        var size = type.BlockBytes();
        for (var b = 0; b < blocks; b++)
        {
            var x = values.Slice(b * BlockLength, BlockLength);
            var block = destination.Slice(b * size, size);
            if (ContainsNonFinite(x))
                throw new ArgumentException($"block {b} holds a NaN or infinity, which {type} cannot represent", nameof(values));
            var d = type == DType.Q8_0 ? MaxMagnitude(x) / 127f : LargestByMagnitude(x) / -8f;
            var inverse = d != 0f ? 1f / d : 0f;
            var scale = (Half)d;
            if (Half.IsInfinity(scale))
                throw new ArgumentException($"block {b} has values too large for {type}'s f16 scale (|d| = {MathF.Abs(d)} > 65504)", nameof(values));
            BinaryPrimitives.WriteHalfLittleEndian(block, scale);
            if (type == DType.Q8_0)
            {
                for (var j = 0; j < BlockLength; j++)
                    block[2 + j] = (byte)(sbyte)MathF.Round(x[j] * inverse, MidpointRounding.AwayFromZero);
            }
            else
            {
                for (var j = 0; j < BlockLength / 2; j++)
                {
                    var low = Math.Min(15, (int)(x[j] * inverse + 8.5f));
                    var high = Math.Min(15, (int)(x[BlockLength / 2 + j] * inverse + 8.5f));
                    block[2 + j] = (byte)(low | high << 4);
                }
            }
        }
    }

    /// <summary>The values of quantized blocks, as float32 (exactly d * q).</summary>
    public static void Dequantize(DType type, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        var size = type.BlockBytes();
        var blocks = CheckBlocks(type, destination.Length, bytes.Length);
        for (var b = 0; b < blocks; b++)
        {
            var block = bytes.Slice(b * size, size);
            var d = (float)BinaryPrimitives.ReadHalfLittleEndian(block);
            var y = destination.Slice(b * BlockLength, BlockLength);
            if (type == DType.Q8_0)
            {
                for (var j = 0; j < BlockLength; j++) y[j] = d * (sbyte)block[2 + j];
            }
            else
            {
                for (var j = 0; j < BlockLength / 2; j++)
                {
                    y[j] = d * ((block[2 + j] & 0xF) - 8);
                    y[BlockLength / 2 + j] = d * ((block[2 + j] >> 4) - 8);
                }
            }
        }
    }

    /// <summary>Blocks whose f16 scale is NaN or infinite: each makes its 32 values non-finite.</summary>
    public static long CountNonFiniteScales(DType type, ReadOnlySpan<byte> bytes)
    {
        var size = type.BlockBytes();
        long count = 0;
        for (var offset = 0; offset + size <= bytes.Length; offset += size)
            if ((BinaryPrimitives.ReadUInt16LittleEndian(bytes[offset..]) & 0x7C00) == 0x7C00) count++;
        return count;
    }

    /// <summary>True when every block's values are zero: its scale is +-0, or its quants all mean 0
    /// (0 for Q8_0, 8 for Q4_0).</summary>
    public static bool IsAllZero(DType type, ReadOnlySpan<byte> bytes)
    {
        var size = type.BlockBytes();
        var zeroQuant = type == DType.Q8_0 ? (byte)0 : (byte)0x88;
        for (var offset = 0; offset + size <= bytes.Length; offset += size)
        {
            var block = bytes.Slice(offset, size);
            if ((BinaryPrimitives.ReadUInt16LittleEndian(block) & 0x7FFF) != 0 && block[2..].ContainsAnyExcept(zeroQuant)) return false;
        }
        return true;
    }

    /// <summary>Blocks of <paramref name="values"/> values, checked against the bytes they take.</summary>
    private static int CheckBlocks(DType type, int values, int bytes)
    {
        if (!type.IsQuantized()) throw new ArgumentException($"{type} is not a quantized type", nameof(type));
        if (values % BlockLength != 0)
            throw new ArgumentException($"{values} values are not a whole number of {type} blocks of {BlockLength}");
        var blocks = values / BlockLength;
        if ((long)blocks * type.BlockBytes() != bytes)
            throw new ArgumentException($"{blocks} {type} blocks take {(long)blocks * type.BlockBytes()} bytes, not {bytes}");
        return blocks;
    }

    private static bool ContainsNonFinite(ReadOnlySpan<float> x)
    {
        foreach (var v in x) if (!float.IsFinite(v)) return true;
        return false;
    }

    private static float MaxMagnitude(ReadOnlySpan<float> x)
    {
        var amax = 0f;
        foreach (var v in x) amax = MathF.Max(amax, MathF.Abs(v));
        return amax;
    }

    /// <summary>The first value of largest magnitude, with its sign (ggml keeps the first on ties).</summary>
    private static float LargestByMagnitude(ReadOnlySpan<float> x)
    {
        var (amax, max) = (0f, 0f);
        foreach (var v in x)
            if (amax < MathF.Abs(v)) (amax, max) = (MathF.Abs(v), v);
        return max;
    }
}
