namespace Kangaroo.Native.Numerics;

/// <summary>How the values of a tensor are stored: float32, IEEE half, bfloat16, or one of llama.cpp's
/// block-quantized formats (<see cref="IBlockFormat"/>), whose blocks run along a row.
/// <see cref="ElementTypes"/> is the table of their properties.</summary>
public enum ElementType
{
    /// <summary>IEEE 754 single precision: 4 bytes a value.</summary>
    F32,

    /// <summary>IEEE 754 half precision: 2 bytes a value.</summary>
    F16,

    /// <summary>bfloat16, float32's upper half: 2 bytes a value.</summary>
    BF16,

    /// <summary>llama.cpp's Q8_0: blocks of 32 int8 values and an f16 scale (<see cref="Q8_0Format"/>).</summary>
    Q8_0,

    /// <summary>llama.cpp's Q4_0: blocks of 32 4-bit values and an f16 scale (<see cref="Q4_0Format"/>).</summary>
    Q4_0,

    /// <summary>llama.cpp's Q4_1: blocks of 32 4-bit values, an f16 scale and an f16 min (<see cref="Q4_1Format"/>).</summary>
    Q4_1,

    /// <summary>llama.cpp's Q5_0: blocks of 32 5-bit values and an f16 scale (<see cref="Q5_0Format"/>).</summary>
    Q5_0,

    /// <summary>llama.cpp's Q5_1: blocks of 32 5-bit values, an f16 scale and an f16 min (<see cref="Q5_1Format"/>).</summary>
    Q5_1,

    /// <summary>llama.cpp's Q2_K: super-blocks of 256 2-bit values in 16 sub-blocks with 4-bit scales and mins (<see cref="Q2_KFormat"/>).</summary>
    Q2_K,

    /// <summary>llama.cpp's Q3_K: super-blocks of 256 3-bit values in 16 sub-blocks with 6-bit scales (<see cref="Q3_KFormat"/>).</summary>
    Q3_K,

    /// <summary>llama.cpp's Q4_K: super-blocks of 256 4-bit values in 8 sub-blocks with 6-bit scales and mins (<see cref="Q4_KFormat"/>).</summary>
    Q4_K,

    /// <summary>llama.cpp's Q5_K: super-blocks of 256 5-bit values in 8 sub-blocks with 6-bit scales and mins (<see cref="Q5_KFormat"/>).</summary>
    Q5_K,

    /// <summary>llama.cpp's Q6_K: super-blocks of 256 6-bit values in 16 sub-blocks with 8-bit scales (<see cref="Q6_KFormat"/>).</summary>
    Q6_K,
}

/// <summary>One row of the element-type table.</summary>
/// <param name="Type">The type the row describes.</param>
/// <param name="Name">As the CLI spells it (<c>q8_0</c>); ggml and safetensors spell it in upper case.</param>
/// <param name="GgmlId">ggml's number for the type, as GGUF stores it.</param>
/// <param name="BlockLength">Values per block: 1 for the float types, whose every value is its own block.</param>
/// <param name="BlockBytes">Bytes per block.</param>
/// <param name="Format">The block format of a quantized type; null for the float types.</param>
/// <param name="InSafeTensors">Whether safetensors can hold the type.</param>
public sealed record ElementTypeInfo(ElementType Type, string Name, uint GgmlId, int BlockLength, int BlockBytes, IBlockFormat? Format, bool InSafeTensors);

/// <summary>The element-type table, and what follows from it: row and tensor byte counts, and the
/// names the CLI, GGUF and safetensors use. Code that handles some types takes its cases from here and
/// throws <see cref="Unsupported"/> for any other.</summary>
public static class ElementTypes
{
    private static readonly ElementTypeInfo[] Table =
    [
        new(ElementType.F32, "f32", GgmlId: 0, BlockLength: 1, BlockBytes: 4, Format: null, InSafeTensors: true),
        new(ElementType.F16, "f16", GgmlId: 1, BlockLength: 1, BlockBytes: 2, Format: null, InSafeTensors: true),
        new(ElementType.BF16, "bf16", GgmlId: 30, BlockLength: 1, BlockBytes: 2, Format: null, InSafeTensors: true),
        Quantized(ElementType.Q8_0, "q8_0", ggmlId: 8, new Q8_0Format()),
        Quantized(ElementType.Q4_0, "q4_0", ggmlId: 2, new Q4_0Format()),
        Quantized(ElementType.Q4_1, "q4_1", ggmlId: 3, new Q4_1Format()),
        Quantized(ElementType.Q5_0, "q5_0", ggmlId: 6, new Q5_0Format()),
        Quantized(ElementType.Q5_1, "q5_1", ggmlId: 7, new Q5_1Format()),
        Quantized(ElementType.Q2_K, "q2_k", ggmlId: 10, new Q2_KFormat()),
        Quantized(ElementType.Q3_K, "q3_k", ggmlId: 11, new Q3_KFormat()),
        Quantized(ElementType.Q4_K, "q4_k", ggmlId: 12, new Q4_KFormat()),
        Quantized(ElementType.Q5_K, "q5_k", ggmlId: 13, new Q5_KFormat()),
        Quantized(ElementType.Q6_K, "q6_k", ggmlId: 14, new Q6_KFormat()),
    ];

    private static ElementTypeInfo Quantized(ElementType type, string name, uint ggmlId, IBlockFormat format) =>
        new(type, name, ggmlId, format.BlockLength, format.BlockBytes, format, InSafeTensors: false);

    /// <summary>Every row, in the order of <see cref="ElementType"/>.</summary>
    public static IReadOnlyList<ElementTypeInfo> All => Table;

    /// <summary>The block types this library writes (llama.cpp's reference quantization): every block type but Q2_K.</summary>
    public static IReadOnlyList<ElementTypeInfo> Quantizable { get; } = [.. Table.Where(t => t.Format is { CanQuantize: true })];

    /// <summary>The type's row; throws <see cref="NotSupportedException"/> for a value outside the table.</summary>
    public static ElementTypeInfo Info(this ElementType type) =>
        (uint)type < (uint)Table.Length && Table[(int)type].Type == type ? Table[(int)type] : throw Unsupported(type, "the element-type table");

    /// <summary>Values per block: 1 for the float types.</summary>
    public static int BlockLength(this ElementType type) => type.Info().BlockLength;

    /// <summary>Bytes per block (per value for the float types).</summary>
    public static int BlockBytes(this ElementType type) => type.Info().BlockBytes;

    /// <summary>Whether the type is block-quantized (has an <see cref="IBlockFormat"/>).</summary>
    public static bool IsQuantized(this ElementType type) => type.Info().Format is not null;

    /// <summary>The block format of a quantized type; <see cref="NotSupportedException"/> for a float type.</summary>
    public static IBlockFormat Format(this ElementType type) =>
        type.Info().Format ?? throw new NotSupportedException($"{type} is not a block-quantized type");

    /// <summary>Bytes of one row of <paramref name="cols"/> values; a quantized row must be whole blocks.</summary>
    public static long RowBytes(this ElementType type, int cols)
    {
        var info = type.Info();
        if (cols % info.BlockLength != 0) throw NotWholeBlocks(type, cols);
        return (long)cols / info.BlockLength * info.BlockBytes;
    }

    /// <summary>Bytes of a tensor of <paramref name="shape"/> (outermost dimension first). Blocks run along
    /// the last dimension, so its length must be a whole number of blocks; any other is refused, naming it.</summary>
    public static long ByteCount(this ElementType type, params int[] shape)
    {
        var info = type.Info();
        var rowLength = shape.Length == 0 ? 1 : shape[^1];
        if (rowLength % info.BlockLength != 0) throw NotWholeBlocks(type, rowLength);
        return checked(shape.Aggregate(1L, (a, b) => checked(a * b)) / info.BlockLength * info.BlockBytes);
    }

    private static ArgumentException NotWholeBlocks(ElementType type, int rowLength) =>
        new($"rows of {rowLength} values cannot be stored as {type}: its blocks of {type.BlockLength()} values need a row length that is a multiple of {type.BlockLength()}");

    /// <summary>The type ggml numbers <paramref name="ggmlId"/>, or null when the table has none.</summary>
    public static ElementType? FromGgmlId(uint ggmlId) => Table.Where(t => t.GgmlId == ggmlId).Select(t => (ElementType?)t.Type).FirstOrDefault();

    /// <summary>Parses a name as the CLI spells it (<c>f32</c>, <c>q8_0</c>, ...; any case).</summary>
    public static ElementType Parse(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Table.Where(t => t.Name.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(t => (ElementType?)t.Type).FirstOrDefault()
            ?? throw new ArgumentException($"unknown dtype '{name}' (expected {string.Join(", ", Table.Select(t => t.Name))})");
    }

    /// <summary>The type's name in safetensors headers (<c>F32</c>, <c>F16</c>, <c>BF16</c>).</summary>
    public static string SafeTensorsName(this ElementType type) =>
        type.Info() is { InSafeTensors: true } info ? info.Name.ToUpperInvariant()
            : throw new NotSupportedException($"safetensors cannot hold {type} tensors (a quantized type; GGUF can)");

    /// <summary>Parses a safetensors dtype name (<c>F32</c>, <c>F16</c> or <c>BF16</c>, exactly).</summary>
    public static bool TryParseSafeTensors(string name, out ElementType type)
    {
        var info = Table.FirstOrDefault(t => t.InSafeTensors && t.Name.ToUpperInvariant() == name);
        type = info?.Type ?? default;
        return info is not null;
    }

    /// <summary>The values of <paramref name="bytes"/> (whole blocks of <paramref name="type"/>) as float32,
    /// exactly as the type defines them: f16 and bf16 widened, quantized blocks dequantized by their format.</summary>
    public static void ToFloats(ElementType type, ReadOnlySpan<byte> bytes, Span<float> destination)
    {
        var info = type.Info();
        if (bytes.Length % info.BlockBytes != 0 || destination.Length < (long)bytes.Length / info.BlockBytes * info.BlockLength)
            throw new ArgumentException($"{bytes.Length} bytes are not whole {type} blocks, or the destination of {destination.Length} values is too short");
        switch (type)
        {
            case ElementType.F32:
                System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case ElementType.F16:
                for (var i = 0; i < bytes.Length / 2; i++) destination[i] = Widening.F16(BitConverter.ToUInt16(bytes[(2 * i)..]));
                break;
            case ElementType.BF16:
                for (var i = 0; i < bytes.Length / 2; i++) destination[i] = Widening.BF16(BitConverter.ToUInt16(bytes[(2 * i)..]));
                break;
            case var _ when info.Format is { } format:
                for (var b = 0; b < bytes.Length / info.BlockBytes; b++)
                    format.Dequantize(bytes.Slice(b * info.BlockBytes, info.BlockBytes), destination.Slice(b * info.BlockLength, info.BlockLength));
                break;
            default:
                throw Unsupported(type, "widening to float32");
        }
    }

    /// <summary>The error for a type that a piece of code does not handle: it names the type and the code.</summary>
    public static NotSupportedException Unsupported(ElementType type, string what) => new($"{what} does not handle element type {type}");
}
