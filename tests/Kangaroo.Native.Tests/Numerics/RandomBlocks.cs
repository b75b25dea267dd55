namespace Kangaroo.Native.Tests.Numerics;

/// <summary>Random blocks of each quantized type for tests, with the values a block's fields can take
/// placed where ggml-common.h puts them: every block's f16 scales and mins, and its packed sub-block scales.</summary>
internal static class RandomBlocks
{
    /// <summary>f16 values that blocks cycle through: normal, negative, subnormal (both signs), zero (both
    /// signs), the largest finite (both signs).</summary>
    public static readonly ushort[] FiniteHalves = [0x2E66, 0xAE66, 0x0001, 0x83FF, 0x0000, 0x8000, 0x7BFF, 0xFBFF];

    /// <summary>Infinity and NaN, which make a whole block non-finite.</summary>
    public static readonly ushort[] NonFiniteHalves = [0x7C00, 0xFC00, 0x7E00];

    /// <summary>The byte offsets of the block's f16 fields (d, then dmin or m) and of its packed sub-block
    /// scales (empty for the 32-value types).</summary>
    public static (int[] Halves, Range Scales) Fields(ElementType type) => type switch
    {
        ElementType.Q8_0 or ElementType.Q4_0 or ElementType.Q5_0 => ([0], default),
        ElementType.Q4_1 or ElementType.Q5_1 => ([0, 2], default),
        ElementType.Q2_K => ([80, 82], 0..16),
        ElementType.Q3_K => ([108], 96..108),
        ElementType.Q4_K or ElementType.Q5_K => ([0, 2], 4..16),
        ElementType.Q6_K => ([208], 192..208),
        _ => throw new ArgumentException($"{type} is not a block type"),
    };

    /// <summary><paramref name="count"/> random blocks. Every third block gives its f16 fields special values
    /// (<see cref="FiniteHalves"/>, and with <paramref name="nonFinite"/> also <see cref="NonFiniteHalves"/>),
    /// each field a different one; the others ordinary magnitudes (2^-9 to 2^-6, either sign). Every fifth block
    /// has all sub-block scale bits clear and the next one all set (the largest scales and mins); every seventh
    /// has all f16 fields zero, so the whole block is.</summary>
    public static byte[] Make(ElementType type, int count, int seed, bool nonFinite = false)
    {
        var size = type.BlockBytes();
        var bytes = new byte[count * size];
        var random = new Random(seed);
        random.NextBytes(bytes);
        ushort[] specials = nonFinite ? [.. FiniteHalves, .. NonFiniteHalves] : FiniteHalves;
        var (halves, scales) = Fields(type);
        for (var b = 0; b < count; b++)
        {
            var block = bytes.AsSpan(b * size, size);
            for (var k = 0; k < halves.Length; k++)
            {
                var value = b % 7 == 6 ? (ushort)0
                    : b % 3 == 2 ? specials[(b / 3 + 3 * k) % specials.Length]
                    : (ushort)(0x1800 + random.Next(0x0C00) | (random.Next(2) << 15));
                BitConverter.TryWriteBytes(block[halves[k]..], value);
            }
            if (b % 5 == 3) block[scales].Clear();
            if (b % 5 == 4) block[scales].Fill(0xFF);
        }
        return bytes;
    }

    /// <summary>The offset term b of each value (value = a q + b) of the types that have one (Q4_1, Q5_1, Q2_K,
    /// Q4_K, Q5_K): the values of the blocks with every quant bit cleared (quant 0 means 0 there); zeros for the
    /// other types. Kernels round a (q . x) and b sum(x) separately, so their error scales with |a q| + |b|.</summary>
    public static float[] Offsets(ElementType type, byte[] bytes)
    {
        var values = new float[bytes.Length / type.BlockBytes() * type.BlockLength()];
        if (type is not (ElementType.Q4_1 or ElementType.Q5_1 or ElementType.Q2_K or ElementType.Q4_K or ElementType.Q5_K)) return values;
        var (halves, scales) = Fields(type);
        var size = type.BlockBytes();
        var kept = new byte[bytes.Length];
        for (var b = 0; b < bytes.Length / size; b++)
        {
            foreach (var h in halves) bytes.AsSpan(b * size + h, 2).CopyTo(kept.AsSpan(b * size + h));
            bytes.AsSpan(b * size, size)[scales].CopyTo(kept.AsSpan(b * size, size)[scales]);
        }
        ElementTypes.ToFloats(type, kept, values);
        return values;
    }
}
