using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Reads element <c>index</c> of a weight stored in its own element type, widened to float32.
/// Kernels that read weights are generic over a struct implementing this, so each kernel is written
/// once and ILGPU specialises it for each storage (no virtual calls on the device): F32, F16 and BF16
/// here, the block-quantized types through <see cref="IBlockRows"/>.
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
