using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Reads element <c>index</c> of a weight stored in its own element type, widened to float32.
/// Kernels that read weights are generic over a struct implementing this, so each kernel is written
/// once and ILGPU specialises it for F32, F16, BF16, Q8_0 and Q4_0 storage (no virtual calls on the device).
/// </summary>
internal interface IWeightRows
{
    float Read(long index);
}

/// <summary>float32 weights: read as stored.</summary>
internal readonly struct F32Weights(ArrayView<float> data) : IWeightRows
{
    public readonly ArrayView<float> Data = data;

    public float Read(long index) => Data[index];
}

/// <summary>IEEE half weights stored as ushort bit patterns, widened by <see cref="Widen.F16"/>.</summary>
internal readonly struct F16Weights(ArrayView<ushort> data) : IWeightRows
{
    public readonly ArrayView<ushort> Data = data;

    public float Read(long index) => Widen.F16(Data[index]);
}

/// <summary>bfloat16 weights stored as ushort bit patterns: the upper half of a float32.</summary>
internal readonly struct BF16Weights(ArrayView<ushort> data) : IWeightRows
{
    public readonly ArrayView<ushort> Data = data;

    public float Read(long index) => Widen.BF16(Data[index]);
}

/// <summary>
/// Block-quantized weights (Q8_0, Q4_0), stored on the device as two arrays: the f16 scale of each
/// block of 32 values (ushort bit patterns), and the quants as 32-bit words in the block's byte order
/// (little-endian: byte k of a word is bits 8k..8k+7), so that quant loads are aligned and coalesced.
/// A unit is 4 consecutive values of a row, columns 4u..4u+3 of the flattened matrix; the matmul
/// reads a unit's scale once for its 4 quants.
/// </summary>
internal interface IBlockRows : IWeightRows
{
    /// <summary>Values 4 <paramref name="unit"/> + k are d * q_k; returns d.</summary>
    float Read4(long unit, out float q0, out float q1, out float q2, out float q3);
}

/// <summary>Q8_0: 8 words of int8 quants per block; value = d * q.</summary>
internal readonly struct Q8_0Weights(ArrayView<ushort> scales, ArrayView<int> quants) : IBlockRows
{
    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = quants;

    public float Read(long index)
    {
        var word = Quants[index >> 2];
        return Widen.F16(Scales[index >> 5]) * ((word << (24 - 8 * (int)(index & 3))) >> 24);
    }

    public float Read4(long unit, out float q0, out float q1, out float q2, out float q3)
    {
        var word = Quants[unit];
        q0 = (word << 24) >> 24;
        q1 = (word << 16) >> 24;
        q2 = (word << 8) >> 24;
        q3 = word >> 24;
        return Widen.F16(Scales[unit >> 3]);
    }
}

/// <summary>Q4_0: 4 words of nibbles per block, byte j holding value j (low nibble) and value 16 + j
/// (high nibble); value = d * (q - 8). Units 0..3 of a block are the low nibbles of its words, 4..7
/// the high ones.</summary>
internal readonly struct Q4_0Weights(ArrayView<ushort> scales, ArrayView<int> quants) : IBlockRows
{
    public readonly ArrayView<ushort> Scales = scales;
    public readonly ArrayView<int> Quants = quants;

    public float Read(long index)
    {
        var column = (int)(index & 31);
        var word = Quants[((index >> 5) << 2) + ((column & 15) >> 2)];
        var shift = 8 * (column & 3) + 4 * (column >> 4);
        return Widen.F16(Scales[index >> 5]) * (((word >> shift) & 0xF) - 8);
    }

    public float Read4(long unit, out float q0, out float q1, out float q2, out float q3)
    {
        var within = (int)(unit & 7);
        var word = Quants[((unit >> 3) << 2) + (within & 3)] >> (4 * (within >> 2));
        q0 = (word & 0xF) - 8;
        q1 = ((word >> 8) & 0xF) - 8;
        q2 = ((word >> 16) & 0xF) - 8;
        q3 = ((word >> 24) & 0xF) - 8;
        return Widen.F16(Scales[unit >> 3]);
    }
}

/// <summary>Portable 16-bit to float32 widening with integer bit operations (ILGPU's own Half type needs
/// cl_khr_fp16, which PoCL lacks). Both conversions are exact.</summary>
internal static class Widen
{
    /// <summary>bfloat16 is the top 16 bits of a float32.</summary>
    public static float BF16(ushort bits) => Interop.IntAsFloat((uint)bits << 16);

    /// <summary>IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
    /// Normal: rebias the exponent by 127 - 15 = 112. Zero/subnormal: mantissa * 2^-24 (exact in
    /// float32). Exponent 31: infinity (mantissa 0) or NaN (payload kept).</summary>
    public static float F16(ushort bits)
    {
        var sign = (uint)(bits & 0x8000) << 16;
        var exponent = (uint)(bits >> 10) & 0x1F;
        var mantissa = (uint)bits & 0x3FF;
        if (exponent == 0)
        {
            var magnitude = mantissa * 5.9604644775390625E-8f; // 2^-24
            return sign != 0 ? -magnitude : magnitude;
        }
        var widened = exponent == 0x1F
            ? sign | 0x7F800000u | (mantissa << 13)
            : sign | ((exponent + 112) << 23) | (mantissa << 13);
        return Interop.IntAsFloat(widened);
    }
}
