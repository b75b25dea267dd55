using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>The type of a GGUF metadata value, as numbered in the GGUF specification.</summary>
public enum GgufValueType : uint
{
    /// <summary>An unsigned 8-bit integer (byte).</summary>
    UInt8 = 0,
    /// <summary>A signed 8-bit integer (sbyte).</summary>
    Int8 = 1,
    /// <summary>An unsigned 16-bit integer (ushort).</summary>
    UInt16 = 2,
    /// <summary>A signed 16-bit integer (short).</summary>
    Int16 = 3,
    /// <summary>An unsigned 32-bit integer (uint).</summary>
    UInt32 = 4,
    /// <summary>A signed 32-bit integer (int).</summary>
    Int32 = 5,
    /// <summary>An IEEE 754 single (float).</summary>
    Float32 = 6,
    /// <summary>A one-byte boolean, 0 or 1 (bool).</summary>
    Bool = 7,
    /// <summary>A length-prefixed UTF-8 string (string).</summary>
    String = 8,
    /// <summary>A typed array of values (<see cref="GgufArray"/>).</summary>
    Array = 9,
    /// <summary>An unsigned 64-bit integer (ulong).</summary>
    UInt64 = 10,
    /// <summary>A signed 64-bit integer (long).</summary>
    Int64 = 11,
    /// <summary>An IEEE 754 double (double).</summary>
    Float64 = 12,
}

/// <summary>A GGUF metadata array: <see cref="Items"/> is a typed .NET array (byte[], int[], float[],
/// bool[], string[], ...; nested arrays are <see cref="GgufArray"/>[]).</summary>
public sealed record GgufArray(GgufValueType ElementType, Array Items);

/// <summary>One tensor of a GGUF file: its element type, shape (outermost dimension first, so a
/// matrix is [rows, row length]), and where its bytes lie, relative to the data section.</summary>
public sealed record GgufTensorInfo(string Name, ElementType Type, int[] Shape, long Offset, long ByteCount);

/// <summary>
/// A GGUF file (llama.cpp's format, versions 1 to 3), memory-mapped: the magic "GGUF", a u32 version,
/// the tensor and metadata counts (u64; u32 in version 1, where string and array lengths are u32 too),
/// typed metadata key-value pairs, tensor infos (name, dimensions innermost first, ggml type, offset),
/// then the data section at the next multiple of <c>general.alignment</c> (default 32). Everything is
/// validated when the file is opened: every count and length against the bytes left, so a hostile
/// count is refused before anything is allocated from it, and every tensor against the data section.
/// Tensor bytes are borrowed from the map, quantized blocks as they are.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    /// <summary>"GGUF" read as a little-endian u32.</summary>
    private const uint Magic = 0x46554747;
    private const int DefaultAlignment = 32;
    private const int MaxDimensions = 4;
    private const int MaxArrayNesting = 16;

    private readonly MappedFile _map;
    private readonly Dictionary<string, object> _metadata = new(StringComparer.Ordinal);
    private readonly Dictionary<string, GgufTensorInfo> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, float[]> _dequantized = new(StringComparer.Ordinal);
    private bool _disposed;
    private long _position;

    /// <summary>The file's path.</summary>
    public string Path { get; }
    /// <summary>The GGUF version of the file: 1, 2 or 3.</summary>
    public uint Version { get; }

    /// <summary>Metadata values: byte, sbyte, ushort, short, uint, int, float, bool, string, ulong,
    /// long, double or <see cref="GgufArray"/>, as the file types them.</summary>
    public IReadOnlyDictionary<string, object> Metadata => _metadata;

    /// <summary>The tensors in the order the file lists them.</summary>
    public IReadOnlyDictionary<string, GgufTensorInfo> Tensors => _tensors;

    /// <summary>The data section's alignment in bytes: <c>general.alignment</c>, else 32.</summary>
    public int Alignment { get; }

    /// <summary>Where the data section starts in the file.</summary>
    public long DataOffset { get; }

    private GgufFile(string path)
    {
        Path = path;
        InputFile.Require(path, "GGUF file");
        var length = new FileInfo(path).Length;
        if (length < 8) throw Error($"file is {length} bytes, shorter than the GGUF magic and version");
        _map = new MappedFile(path, length);
        try
        {
            if (ReadU32("magic") != Magic) throw Error("not a GGUF file (no \"GGUF\" magic)");
            Version = ReadU32("version");
            if (Version is < 1 or > 3) throw Error($"GGUF version {Version} is not supported (supported: 1, 2, 3)");
            var tensorCount = ReadCount("tensor count", Version == 1 ? 20 : 24);
            var metadataCount = ReadCount("metadata count", Version == 1 ? 9 : 13);
            for (long i = 0; i < metadataCount; i++)
            {
                var key = ReadString("metadata key");
                var type = ReadValueType($"metadata '{key}'");
                var value = ReadValue(type, key, 0);
                if (!_metadata.TryAdd(key, value)) throw Error($"metadata '{key}' is listed more than once");
            }
            Alignment = ReadAlignment();
            var infos = new List<(string Name, uint Type, ulong[] Dimensions, ulong Offset)>();
            for (long i = 0; i < tensorCount; i++) infos.Add(ReadTensorInfo(i));
            DataOffset = (_position + Alignment - 1) / Alignment * Alignment;
            if (DataOffset > length)
                throw Error($"the data section would start at byte {DataOffset}, past the end of the {length}-byte file (truncated?)");
            foreach (var (name, type, dimensions, offset) in infos)
                if (!_tensors.TryAdd(name, CheckTensor(name, type, dimensions, offset, length - DataOffset)))
                    throw Error($"tensor '{name}' is listed more than once");
            CheckOverlaps();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens and validates a GGUF file; every problem is a <see cref="ModelFormatException"/> naming it.</summary>
    public static GgufFile Open(string path) =>
        InputFile.Reading(path, () => new GgufFile(path));

    /// <summary>True when the file starts with the GGUF magic: how a GGUF model or tokenizer is told
    /// from other formats, whatever its name.</summary>
    public static bool HasMagic(string path)
    {
        if (InputFile.KindOf(path) != FileKind.Regular) return false;
        try
        {
            using var stream = File.OpenRead(path);
            Span<byte> start = stackalloc byte[4];
            return stream.ReadAtLeast(start, 4, throwOnEndOfStream: false) == 4 && BinaryPrimitives.ReadUInt32LittleEndian(start) == Magic;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Whether the file holds a tensor of that name.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor's entry; throws <see cref="ModelFormatException"/> when the file has no such tensor.</summary>
    public GgufTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out var info) ? info : throw Error($"tensor '{name}' is missing");

    /// <summary>The tensor's bytes, borrowed from the memory map: valid until the file is disposed.
    /// Quantized blocks stay as they are, except in a tensor whose rows are not whole blocks (early
    /// llama.cpp quantized such a tensor as one run of blocks across its rows): the kernels read whole
    /// blocks per row, so that tensor is dequantized, exactly, to F32, once.</summary>
    public TensorData Read(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var info = Info(name);
        if (info.ByteCount > int.MaxValue)
            throw Error($"tensor '{name}' is {info.ByteCount} bytes; tensors over 2 GiB cannot be read as one span");
        var bytes = new ReadOnlySpan<byte>(_map.Start + DataOffset + info.Offset, (int)info.ByteCount);
        if (info.Shape[^1] % info.Type.BlockLength() == 0) return new TensorData(info.Type, info.Shape, bytes);
        if (!_dequantized.TryGetValue(name, out var values))
        {
            var count = info.Shape.Aggregate(1L, (a, b) => a * b);
            if (count > Array.MaxLength) throw Error($"tensor '{name}' has {count} values, too many to dequantize");
            _dequantized[name] = values = new float[count];
            Quantization.Dequantize(info.Type, bytes, values);
        }
        return TensorData.FromFloats(values, info.Shape);
    }

    /// <summary>Keeps the memory map, and the bytes <see cref="Read"/> borrowed from it, valid until the lease is disposed.</summary>
    internal IDisposable Lease() => _map.Lease();

    // Typed metadata: null when the key is absent, an error naming the key when its type is wrong.

    /// <summary>A string value; null when the key is absent. Throws <see cref="ModelFormatException"/> when it is not a string.</summary>
    public string? String(string key) => Get(key, "a string", v => v as string);

    /// <summary>A bool value; null when the key is absent. Throws <see cref="ModelFormatException"/> when it is not a bool.</summary>
    public bool? Bool(string key) => Get(key, "a bool", v => v is bool b ? b : (bool?)null);

    /// <summary>An integer of any GGUF integer type that fits in a long.</summary>
    public long? Integer(string key) => Get(key, "an integer", AsInteger);

    /// <summary>A float32 or float64.</summary>
    public double? Number(string key) => Get(key, "a number", v => v switch { float f => f, double d => d, _ => (double?)null });

    /// <summary>An array of strings; null when the key is absent. Throws <see cref="ModelFormatException"/> when it is another type.</summary>
    public string[]? Strings(string key) => Get(key, "an array of strings", v => v is GgufArray { Items: string[] items } ? items : null);

    /// <summary>An array of float32; null when the key is absent. Throws <see cref="ModelFormatException"/> when it is another type.</summary>
    public float[]? Floats(string key) => Get(key, "an array of float32", v => v is GgufArray { Items: float[] items } ? items : null);

    /// <summary>An array of any GGUF integer type, each value fitting in an int.</summary>
    public int[]? Integers(string key) => Get(key, "an array of integers", v =>
    {
        if (v is not GgufArray { Items: var items } || items is string[] or float[] or double[] or bool[] or GgufArray[]) return null;
        var result = new int[items.Length];
        for (var i = 0; i < items.Length; i++)
            if (AsInteger(items.GetValue(i)!) is { } value && value is >= int.MinValue and <= int.MaxValue) result[i] = (int)value;
            else throw Error($"metadata '{key}' item {i} ({items.GetValue(i)}) is not an int32");
        return result;
    });

    private T? Get<T>(string key, string expected, Func<object, T?> convert)
    {
        if (!_metadata.TryGetValue(key, out var value)) return default;
        return convert(value) ?? throw Error($"metadata '{key}' is {Describe(value)}, not {expected}");
    }

    private static long? AsInteger(object value) => value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v when v <= long.MaxValue => (long)v,
        _ => null,
    };

    /// <summary>A value's GGUF type for error messages ("a string", "an array of 3 uint32").</summary>
    private static string Describe(object value) => value switch
    {
        GgufArray array => $"an array of {array.Items.Length} {array.ElementType.ToString().ToLowerInvariant()}",
        string => "a string",
        bool => "a bool",
        _ => $"a {TypeOf(value)?.ToString().ToLowerInvariant()} ({value})",
    };

    /// <summary>The GGUF type of a metadata value as <see cref="Metadata"/> holds it; null for any other .NET type.</summary>
    internal static GgufValueType? TypeOf(object value) => value switch
    {
        byte => GgufValueType.UInt8, sbyte => GgufValueType.Int8, ushort => GgufValueType.UInt16, short => GgufValueType.Int16,
        uint => GgufValueType.UInt32, int => GgufValueType.Int32, float => GgufValueType.Float32, ulong => GgufValueType.UInt64,
        long => GgufValueType.Int64, double => GgufValueType.Float64, bool => GgufValueType.Bool, string => GgufValueType.String,
        GgufArray => GgufValueType.Array,
        _ => null,
    };

    private ModelFormatException Error(string problem) => new($"{Path}: {problem}");

    // Reading the header. Every read checks the bytes left first; _position only moves forward.

    private long Left => _map.Length - _position;

    private ReadOnlySpan<byte> Take(long count, string what)
    {
        if (count > Left)
            throw Error($"{what} needs {count} bytes at offset {_position} but the file ends at {_map.Length} (truncated?)");
        if (count > int.MaxValue) throw Error($"{what} is {count} bytes, more than one value may take");
        var span = new ReadOnlySpan<byte>(_map.Start + _position, (int)count);
        _position += count;
        return span;
    }

    private uint ReadU32(string what) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, what));

    /// <summary>A count or length: u32 in version 1, u64 after.</summary>
    private ulong ReadLength(string what) => Version == 1 ? ReadU32(what) : BinaryPrimitives.ReadUInt64LittleEndian(Take(8, what));

    /// <summary>A count of entries each at least <paramref name="minimumBytes"/> long: more than the
    /// bytes left could hold is refused before anything is sized from it.</summary>
    private long ReadCount(string what, int minimumBytes)
    {
        var count = ReadLength(what);
        if (count > (ulong)(Left / minimumBytes))
            throw Error($"{what} {count} is impossible: {count} entries of at least {minimumBytes} bytes do not fit in the {Left} bytes left of the {_map.Length}-byte file");
        return (long)count;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private string ReadString(string what)
    {
        var length = ReadLength($"{what} length");
        if (length > (ulong)Left)
            throw Error($"{what} of {length} bytes at offset {_position} runs past the end of the {_map.Length}-byte file");
        var start = _position;
        var bytes = Take((long)length, what);
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            throw Error($"{what} at offset {start} is not valid UTF-8");
        }
    }

    private GgufValueType ReadValueType(string what)
    {
        var type = ReadU32($"{what} type");
        return type <= (uint)GgufValueType.Float64 ? (GgufValueType)type : throw Error($"{what} has unknown value type {type}");
    }

    /// <summary>The fewest bytes a value of <paramref name="type"/> takes in the file.</summary>
    private int MinimumBytes(GgufValueType type) => type switch
    {
        GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool => 1,
        GgufValueType.UInt16 or GgufValueType.Int16 => 2,
        GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32 => 4,
        GgufValueType.String => Version == 1 ? 4 : 8,
        GgufValueType.Array => Version == 1 ? 8 : 12,
        _ => 8,
    };

    private object ReadValue(GgufValueType type, string key, int depth)
    {
        var what = $"metadata '{key}'";
        switch (type)
        {
            case GgufValueType.String: return ReadString(what);
            case GgufValueType.Array: return ReadArray(key, depth);
            case GgufValueType.Bool: return ReadBool(Take(1, what)[0], key);
        }
        var bytes = Take(MinimumBytes(type), what);
        return type switch
        {
            GgufValueType.UInt8 => bytes[0],
            GgufValueType.Int8 => (sbyte)bytes[0],
            GgufValueType.UInt16 => BinaryPrimitives.ReadUInt16LittleEndian(bytes),
            GgufValueType.Int16 => BinaryPrimitives.ReadInt16LittleEndian(bytes),
            GgufValueType.UInt32 => BinaryPrimitives.ReadUInt32LittleEndian(bytes),
            GgufValueType.Int32 => BinaryPrimitives.ReadInt32LittleEndian(bytes),
            GgufValueType.Float32 => BinaryPrimitives.ReadSingleLittleEndian(bytes),
            GgufValueType.UInt64 => BinaryPrimitives.ReadUInt64LittleEndian(bytes),
            GgufValueType.Int64 => BinaryPrimitives.ReadInt64LittleEndian(bytes),
            _ => (object)BinaryPrimitives.ReadDoubleLittleEndian(bytes),
        };
    }

    private bool ReadBool(byte value, string key) =>
        value <= 1 ? value == 1 : throw Error($"metadata '{key}' has bool value {value} (must be 0 or 1)");

    private GgufArray ReadArray(string key, int depth)
    {
        if (depth >= MaxArrayNesting) throw Error($"metadata '{key}' nests arrays more than {MaxArrayNesting} deep");
        var elementType = ReadValueType($"metadata '{key}' array element");
        var length = ReadCount($"metadata '{key}' array length", MinimumBytes(elementType));
        if (length > Array.MaxLength) throw Error($"metadata '{key}' has {length} items, more than an array can hold");
        var count = (int)length;
        switch (elementType)
        {
            case GgufValueType.String:
                var strings = new string[count];
                for (var i = 0; i < count; i++) strings[i] = ReadString($"metadata '{key}' item {i}");
                return new GgufArray(elementType, strings);
            case GgufValueType.Array:
                var arrays = new GgufArray[count];
                for (var i = 0; i < count; i++) arrays[i] = ReadArray(key, depth + 1);
                return new GgufArray(elementType, arrays);
            case GgufValueType.Bool:
                var bools = new bool[count];
                var raw = Take(count, $"metadata '{key}'");
                for (var i = 0; i < count; i++) bools[i] = ReadBool(raw[i], key);
                return new GgufArray(elementType, bools);
        }
        var bytes = Take((long)count * MinimumBytes(elementType), $"metadata '{key}'");
        return new GgufArray(elementType, elementType switch
        {
            GgufValueType.UInt8 => bytes.ToArray(),
            GgufValueType.Int8 => MemoryMarshal.Cast<byte, sbyte>(bytes).ToArray(),
            GgufValueType.UInt16 => MemoryMarshal.Cast<byte, ushort>(bytes).ToArray(),
            GgufValueType.Int16 => MemoryMarshal.Cast<byte, short>(bytes).ToArray(),
            GgufValueType.UInt32 => MemoryMarshal.Cast<byte, uint>(bytes).ToArray(),
            GgufValueType.Int32 => MemoryMarshal.Cast<byte, int>(bytes).ToArray(),
            GgufValueType.Float32 => MemoryMarshal.Cast<byte, float>(bytes).ToArray(),
            GgufValueType.UInt64 => MemoryMarshal.Cast<byte, ulong>(bytes).ToArray(),
            GgufValueType.Int64 => MemoryMarshal.Cast<byte, long>(bytes).ToArray(),
            _ => (Array)MemoryMarshal.Cast<byte, double>(bytes).ToArray(),
        });
    }

    /// <summary><c>general.alignment</c>: a u32, a non-zero multiple of 8 as the specification requires.</summary>
    private int ReadAlignment()
    {
        if (!_metadata.TryGetValue("general.alignment", out var value)) return DefaultAlignment;
        return value is uint alignment && alignment > 0 && alignment % 8 == 0 && alignment <= 1 << 20
            ? (int)alignment
            : throw Error($"metadata 'general.alignment' is {Describe(value)}; it must be a uint32 multiple of 8 (at most 1 MiB)");
    }

    private (string Name, uint Type, ulong[] Dimensions, ulong Offset) ReadTensorInfo(long index)
    {
        var name = ReadString($"tensor {index} name");
        var dimensionCount = ReadU32($"tensor '{name}' dimension count");
        if (dimensionCount is 0 or > MaxDimensions)
            throw Error($"tensor '{name}' has {dimensionCount} dimensions (1 to {MaxDimensions} allowed)");
        var dimensions = new ulong[dimensionCount];
        for (var d = 0; d < dimensionCount; d++) dimensions[d] = ReadLength($"tensor '{name}' dimension {d}");
        var type = ReadU32($"tensor '{name}' type");
        var offset = BinaryPrimitives.ReadUInt64LittleEndian(Take(8, $"tensor '{name}' offset"));
        return (name, type, dimensions, offset);
    }

    private GgufTensorInfo CheckTensor(string name, uint ggmlType, ulong[] dimensions, ulong offset, long dataLength)
    {
        var type = ElementTypes.FromGgmlId(ggmlType)
            ?? throw Error($"tensor '{name}' has ggml type {ggmlType} ({GgmlTypes.Name(ggmlType)}), which is not supported (supported: {GgmlTypes.SupportedNames})");
        foreach (var dimension in dimensions)
            if (dimension is 0 or > int.MaxValue)
                throw Error($"tensor '{name}' has dimension {dimension} (must be 1 to {int.MaxValue})");
        // Innermost first in the file; outermost first here, as everywhere else in the engine.
        var shape = dimensions.Reverse().Select(d => (int)d).ToArray();
        var (blockValues, blockBytes) = (type.BlockLength(), type.BlockBytes());
        var values = dimensions.Aggregate(BigInteger.One, (a, d) => a * d);
        if (values % blockValues != 0)
            throw Error($"tensor '{name}': {values} values are not whole {GgmlTypes.Name(ggmlType)} blocks of {blockValues}");
        var bytes = values / blockValues * blockBytes;
        if (offset % (ulong)Alignment != 0)
            throw Error($"tensor '{name}' starts at data offset {offset}, not a multiple of the alignment {Alignment}");
        if (offset + bytes > dataLength)
            throw Error($"tensor '{name}' ({TensorData.FormatShape(shape)} x {GgmlTypes.Name(ggmlType)}, {bytes} bytes at data offset {offset}) runs past the end of the {dataLength}-byte data section (truncated?)");
        return new GgufTensorInfo(name, type, shape, (long)offset, (long)bytes);
    }

    private void CheckOverlaps()
    {
        GgufTensorInfo? previous = null;
        foreach (var info in _tensors.Values.OrderBy(t => t.Offset))
        {
            if (previous is not null && info.Offset < previous.Offset + previous.ByteCount)
                throw Error($"tensors '{previous.Name}' and '{info.Name}' overlap (data offsets {previous.Offset} and {info.Offset})");
            previous = info;
        }
    }

    /// <summary>Unmaps the file; tensor bytes read from it are invalid afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _map.Dispose();
    }
}

/// <summary>ggml's tensor types: the numbers and names GGUF uses, and which of them the engine reads.</summary>
internal static class GgmlTypes
{
    private static readonly string[] Names =
    [
        "F32", "F16", "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
        "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ2_S", "IQ4_XS", "I8", "I16", "I32", "I64", "F64", "IQ1_M",
        "BF16", "Q4_0_4_4", "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4",
    ];

    public static string Name(uint id) => id < Names.Length ? Names[id] : "unknown";

    /// <summary>The ggml types the engine reads: those of the element-type table.</summary>
    public static string SupportedNames => string.Join(", ", ElementTypes.All.Select(t => Names[t.GgmlId]));
}
