using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>A tensor's raw little-endian bytes (borrowed from a memory map or an array), its element
/// type and its shape, outermost dimension first. Quantized types hold blocks along the last
/// dimension (<see cref="IBlockFormat"/>).</summary>
public readonly ref struct TensorData(ElementType type, int[] shape, ReadOnlySpan<byte> bytes)
{
    /// <summary>The element type of <see cref="Bytes"/>.</summary>
    public ElementType Type { get; } = type;
    /// <summary>The dimensions, outermost first.</summary>
    public int[] Shape { get; } = shape;
    /// <summary>The raw little-endian values or blocks.</summary>
    public ReadOnlySpan<byte> Bytes { get; } = bytes;

    /// <summary>Values in the tensor (a quantized block counts its values).</summary>
    public long ElementCount => (long)Bytes.Length / Type.BlockBytes() * Type.BlockLength();

    /// <summary>Float32 values as a tensor of <paramref name="shape"/>, borrowing their memory.</summary>
    public static TensorData FromFloats(ReadOnlySpan<float> values, params int[] shape) =>
        new(ElementType.F32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    /// <summary>The values widened (or dequantized) to float32.</summary>
    public float[] ToFloats()
    {
        var result = new float[ElementCount];
        Widen(Type, Bytes, result);
        return result;
    }

    /// <summary>The values of <paramref name="bytes"/> as float32, exactly as the type defines them
    /// (<see cref="ElementTypes.ToFloats"/>); f16 goes through the vectorised conversion of
    /// System.Numerics.Tensors (the same values), since whole models are widened when they are quantized at load.</summary>
    public static void Widen(ElementType type, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        if (type == ElementType.F16)
            System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes), destination);
        else
            ElementTypes.ToFloats(type, bytes, destination);
    }

    /// <summary>How many values are NaN or infinite (their exponent bits all set), counted without widening;
    /// a quantized block whose scale is NaN or infinite counts all of its values.</summary>
    public long CountNonFinite() => Type switch
    {
        ElementType.F32 => CountAllOnes(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, uint>(Bytes), 0x7F800000u),
        ElementType.F16 => CountAllOnes(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(Bytes), (ushort)0x7C00),
        ElementType.BF16 => CountAllOnes(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(Bytes), (ushort)0x7F80),
        _ when Type.IsQuantized() => Quantization.CountNonFiniteBlocks(Type, Bytes) * Type.BlockLength(),
        _ => throw ElementTypes.Unsupported(Type, "the non-finite check"),
    };

    /// <summary>True when every value is zero (an empty tensor included): every byte, or for a quantized
    /// tensor every block (a zero scale, or quants that all mean zero).</summary>
    public bool IsAllZero => Type.IsQuantized() ? Quantization.IsAllZero(Type, Bytes) : !Bytes.ContainsAnyExcept((byte)0);

    /// <summary>Values whose bits under <paramref name="mask"/> are all set; vectorised, since every
    /// weight of a model is checked when it is loaded.</summary>
    private static long CountAllOnes<T>(ReadOnlySpan<T> values, T mask) where T : unmanaged, System.Numerics.IBinaryInteger<T>
    {
        long count = 0;
        var i = 0;
        var vectorMask = new System.Numerics.Vector<T>(mask);
        for (; i <= values.Length - System.Numerics.Vector<T>.Count; i += System.Numerics.Vector<T>.Count)
        {
            if (!System.Numerics.Vector.EqualsAny(new System.Numerics.Vector<T>(values[i..]) & vectorMask, vectorMask)) continue;
            for (var j = i; j < i + System.Numerics.Vector<T>.Count; j++) if ((values[j] & mask) == mask) count++;
        }
        for (; i < values.Length; i++) if ((values[i] & mask) == mask) count++;
        return count;
    }

    /// <summary>A shape as error messages write it: <c>[rows, cols]</c>.</summary>
    public static string FormatShape(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";
}
