namespace Kangaroo.Native.Loader;

/// <summary>Element types the loader reads: safetensors' F32, F16 and BF16, and llama.cpp's block
/// quantized Q8_0 and Q4_0 (<see cref="Quantization"/>), whose blocks of 32 values run along a row.</summary>
public enum DType { F32, F16, BF16, Q8_0, Q4_0 }

public static class DTypes
{
    /// <summary>Values per block: 32 for the quantized types, else 1 (every value is its own block).</summary>
    public static int BlockLength(this DType type) => type.IsQuantized() ? Quantization.BlockLength : 1;

    /// <summary>Bytes per block: 4 (F32), 2 (F16, BF16), 34 (Q8_0: f16 scale + 32 int8), 18 (Q4_0: f16 scale + 16 bytes of nibbles).</summary>
    public static int BlockBytes(this DType type) => type switch
    {
        DType.F32 => 4,
        DType.F16 or DType.BF16 => 2,
        DType.Q8_0 => 2 + Quantization.BlockLength,
        DType.Q4_0 => 2 + Quantization.BlockLength / 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown dtype"),
    };

    public static bool IsQuantized(this DType type) => type is DType.Q8_0 or DType.Q4_0;

    /// <summary>Bytes of a tensor of <paramref name="shape"/> (outermost dimension first). Quantized
    /// blocks run along the last dimension, so its length must be a multiple of 32; any other length
    /// is refused here, naming it.</summary>
    public static long ByteCount(this DType type, params int[] shape)
    {
        var rowLength = shape.Length == 0 ? 1 : shape[^1];
        if (rowLength % type.BlockLength() != 0)
            throw new ArgumentException(
                $"rows of {rowLength} values cannot be stored as {type}: its blocks of {type.BlockLength()} values need a row length that is a multiple of {type.BlockLength()}");
        return checked(shape.Aggregate(1L, (a, b) => checked(a * b)) / type.BlockLength() * type.BlockBytes());
    }

    /// <summary>The dtype's name in safetensors headers; safetensors has no quantized types.</summary>
    public static string SafeTensorsName(this DType type) => type switch
    {
        DType.F32 => "F32",
        DType.F16 => "F16",
        DType.BF16 => "BF16",
        _ => throw new NotSupportedException($"safetensors cannot hold {type} tensors (a quantized type; GGUF can)"),
    };

    /// <summary>Parses a safetensors dtype name (F32, F16 or BF16).</summary>
    public static bool TryParse(string name, out DType type)
    {
        switch (name)
        {
            case "F32": type = DType.F32; return true;
            case "F16": type = DType.F16; return true;
            case "BF16": type = DType.BF16; return true;
            default: type = default; return false;
        }
    }

    /// <summary>Parses "f32", "f16", "bf16", "q8_0" or "q4_0" (any case), as the CLI spells them.</summary>
    public static DType ParseOption(string name) =>
        Enum.GetValues<DType>().Where(t => t.ToString().Equals(name ?? throw new ArgumentNullException(nameof(name)), StringComparison.OrdinalIgnoreCase))
            .Select(t => (DType?)t).FirstOrDefault()
        ?? throw new ArgumentException($"unknown dtype '{name}' (expected f32, f16, bf16, q8_0 or q4_0)");
}
