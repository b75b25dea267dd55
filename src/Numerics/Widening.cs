namespace Kangaroo.Native.Numerics;

/// <summary>The 16-bit float formats widened to float32, exactly, one value at a time: the definitions
/// that faster conversions are tested against.</summary>
public static class Widening
{
    /// <summary>IEEE binary16 (subnormals, infinities and NaN payloads included).</summary>
    public static float F16(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>bfloat16: the upper 16 bits of a float32.</summary>
    public static float BF16(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
