namespace Kangaroo.Native.Loader;

/// <summary>A tensor's raw little-endian bytes (borrowed from a memory map or an array), its element
/// type and its shape, outermost dimension first.</summary>
public readonly ref struct TensorData(DType type, int[] shape, ReadOnlySpan<byte> bytes)
{
    public DType Type { get; } = type;
    public int[] Shape { get; } = shape;
    public ReadOnlySpan<byte> Bytes { get; } = bytes;

    public long ElementCount => Bytes.Length / Type.Size();

    public static TensorData FromFloats(ReadOnlySpan<float> values, params int[] shape) =>
        new(DType.F32, shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));

    /// <summary>The values widened to float32.</summary>
    public float[] ToFloats()
    {
        var result = new float[ElementCount];
        Widen(Type, Bytes, result);
        return result;
    }

    public static void Widen(DType type, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        switch (type)
        {
            case DType.F32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case DType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(
                    System.Runtime.InteropServices.MemoryMarshal.Cast<byte, Half>(bytes), destination);
                break;
            default:
                var halves = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes);
                for (var i = 0; i < halves.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(halves[i] << 16);
                break;
        }
    }

    public static string FormatShape(IReadOnlyList<int> shape) => "[" + string.Join(", ", shape) + "]";
}
