using System.Buffers.Binary;

namespace Kangaroo.Native.Numerics;

/// <summary>The f16 scales of blocks, as the block formats read and write them (at the start of the span
/// given), and the zero check of the formats whose zero blocks have no single pattern.</summary>
internal static class BlockScales
{
    /// <summary>Writes d rounded to f16 (to nearest, ties to even) at the block's start; refuses a d
    /// that f16 cannot hold.</summary>
    public static void WriteF16(Span<byte> block, float d, ElementType type)
    {
        var scale = (Half)d;
        if (Half.IsInfinity(scale))
            throw new ArgumentException($"values too large for {type}'s f16 scale (|d| = {MathF.Abs(d)} > 65504)");
        BinaryPrimitives.WriteHalfLittleEndian(block, scale);
    }

    /// <summary>The f16 at the block's start, widened.</summary>
    public static float ReadF16(ReadOnlySpan<byte> block) => Widening.F16(BinaryPrimitives.ReadUInt16LittleEndian(block));

    /// <summary>The f16 at the block's start is NaN or infinite (exponent bits all set).</summary>
    public static bool IsNonFiniteF16(ReadOnlySpan<byte> block) => (BinaryPrimitives.ReadUInt16LittleEndian(block) & 0x7C00) == 0x7C00;

    /// <summary>The f16 at the block's start is +0 or -0.</summary>
    public static bool IsZeroF16(ReadOnlySpan<byte> block) => (BinaryPrimitives.ReadUInt16LittleEndian(block) & 0x7FFF) == 0;

    /// <summary>Whether every value of the block dequantizes to zero (either sign).</summary>
    public static bool DequantizesToZero(IBlockFormat format, ReadOnlySpan<byte> block)
    {
        Span<float> values = stackalloc float[format.BlockLength];
        format.Dequantize(block, values);
        foreach (var v in values)
            if (v != 0f) return false;
        return true;
    }
}
