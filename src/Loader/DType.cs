namespace Kangaroo.Native.Loader;

/// <summary>Element types the loader reads: safetensors' F32, F16 and BF16.</summary>
public enum DType { F32, F16, BF16 }

public static class DTypes
{
    public static int Size(this DType type) => type == DType.F32 ? 4 : 2;

    public static string SafeTensorsName(this DType type) => type switch
    {
        DType.F32 => "F32",
        DType.F16 => "F16",
        _ => "BF16",
    };

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

    /// <summary>Parses "f32", "f16" or "bf16" (any case), as the CLI spells them.</summary>
    public static DType ParseOption(string name) =>
        TryParse((name ?? throw new ArgumentNullException(nameof(name))).ToUpperInvariant(), out var type)
            ? type
            : throw new ArgumentException($"unknown dtype '{name}' (expected f32, f16 or bf16)");
}
