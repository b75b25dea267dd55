using System.Text.Json;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>One tensor's entry in a safetensors header.</summary>
public sealed record SafeTensorInfo(string Name, ElementType Type, int[] Shape, long Begin, long End)
{
    /// <summary>Values in the tensor: the product of the shape.</summary>
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A safetensors file, memory-mapped: an 8-byte little-endian header length, a JSON header mapping
/// tensor names to dtype, shape and [begin, end) offsets into the data section, then the data.
/// Every header entry is validated when the file is opened; tensor bytes are read through the map,
/// never copied as a whole.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    private const long MaxHeaderBytes = 100_000_000;
    private readonly MappedFile _map;
    private readonly byte* _data;
    private bool _disposed;
    private readonly Dictionary<string, SafeTensorInfo> _tensors;

    /// <summary>The file's path.</summary>
    public string Path { get; }
    /// <summary>The header's tensor entries, by name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors => _tensors;
    /// <summary>The header's <c>__metadata__</c> strings (empty when it has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Where the data section starts in the file (tensor offsets count from there).</summary>
    public long DataOffset { get; }

    private SafeTensorsFile(string path)
    {
        Path = path;
        InputFile.Require(path, "safetensors file");
        var fileLength = new FileInfo(path).Length;
        if (fileLength < 8) throw Error($"file is {fileLength} bytes, shorter than the 8-byte header length");

        _map = new MappedFile(path, fileLength);
        var basePtr = _map.Start;
        try
        {
            var headerLength = BitConverter.ToInt64(new ReadOnlySpan<byte>(basePtr, 8));
            if (headerLength <= 0 || headerLength > MaxHeaderBytes)
                throw Error($"header length {headerLength} is not a plausible size");
            if (8 + headerLength > fileLength)
                throw Error($"header length {headerLength} runs past the end of the {fileLength}-byte file");

            DataOffset = 8 + headerLength;
            _data = basePtr + DataOffset;
            var dataLength = fileLength - 8 - headerLength;
            (_tensors, Metadata) = ParseHeader(new ReadOnlySpan<byte>(basePtr + 8, (int)headerLength), dataLength);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens and maps the file and validates its header; throws <see cref="ModelFormatException"/> naming the file when it is not valid safetensors.</summary>
    public static SafeTensorsFile Open(string path) =>
        InputFile.Reading(path, () => new SafeTensorsFile(path));

    /// <summary>Whether the file holds a tensor of that name.</summary>
    public bool Contains(string name) => _tensors.ContainsKey(name);

    /// <summary>The tensor's entry; throws <see cref="ModelFormatException"/> when the file has no such tensor.</summary>
    public SafeTensorInfo Info(string name) =>
        _tensors.TryGetValue(name, out var info) ? info : throw Error($"tensor '{name}' is missing");

    /// <summary>The tensor's bytes, borrowed from the memory map: valid until the file is disposed.</summary>
    public TensorData Read(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var info = Info(name);
        var length = info.End - info.Begin;
        if (length > int.MaxValue)
            throw Error($"tensor '{name}' is {length} bytes; tensors over 2 GiB cannot be read as one span");
        return new TensorData(info.Type, info.Shape, new ReadOnlySpan<byte>(_data + info.Begin, (int)length));
    }

    /// <summary>Keeps the memory map, and the bytes <see cref="Read"/> borrowed from it, valid until the lease is disposed.</summary>
    internal IDisposable Lease() => _map.Lease();

    private ModelFormatException Error(string problem) => new($"{Path}: {problem}");

    private (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseHeader(ReadOnlySpan<byte> header, long dataLength)
    {
        if (!System.Text.Unicode.Utf8.IsValid(header)) throw Error("header is not valid JSON (invalid UTF-8)");
        JsonDocument document;
        try
        {
            document = JsonText.Parse(header.ToArray());
        }
        catch (JsonException e)
        {
            throw Error($"header is not valid JSON ({ErrorText.Json(e)})");
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object) throw Error("header is not a JSON object");
            var tensors = new Dictionary<string, SafeTensorInfo>();
            var metadata = new Dictionary<string, string>();
            foreach (var property in document.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                {
                    if (property.Value.ValueKind != JsonValueKind.Object) throw Error("__metadata__ is not an object");
                    foreach (var entry in property.Value.EnumerateObject())
                    {
                        if (entry.Value.ValueKind != JsonValueKind.String) throw Error($"__metadata__ value '{entry.Name}' is not a string");
                        metadata[entry.Name] = entry.Value.GetString()!;
                    }
                    continue;
                }
                if (tensors.ContainsKey(property.Name)) throw Error($"tensor '{property.Name}' is listed more than once in the header");
                tensors[property.Name] = ParseEntry(property.Name, property.Value, dataLength);
            }
            CheckLayout(tensors.Values, dataLength);
            return (tensors, metadata);
        }
    }

    private SafeTensorInfo ParseEntry(string name, JsonElement entry, long dataLength)
    {
        if (entry.ValueKind != JsonValueKind.Object) throw Error($"tensor '{name}': entry is not an object");
        if (!entry.TryGetProperty("dtype", out var dtypeElement) || dtypeElement.ValueKind != JsonValueKind.String)
            throw Error($"tensor '{name}': missing dtype");
        var dtypeName = dtypeElement.GetString()!;
        if (!ElementTypes.TryParseSafeTensors(dtypeName, out var dtype))
            throw Error($"tensor '{name}': unknown or unsupported dtype '{dtypeName}' (supported: F32, F16, BF16)");
        if (!entry.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw Error($"tensor '{name}': missing shape");
        var shape = new int[shapeElement.GetArrayLength()];
        var i = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out var value) || value < 0)
                throw Error($"tensor '{name}': shape entry {dim} is not a non-negative integer");
            shape[i++] = value;
        }
        if (!entry.TryGetProperty("data_offsets", out var offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw Error($"tensor '{name}': data_offsets must be [begin, end]");
        if (offsets[0].ValueKind != JsonValueKind.Number || offsets[1].ValueKind != JsonValueKind.Number
            || !offsets[0].TryGetInt64(out var begin) || !offsets[1].TryGetInt64(out var end))
            throw Error($"tensor '{name}': data_offsets are not integers");
        if (begin < 0 || end < begin || end > dataLength)
            throw Error($"tensor '{name}': data_offsets [{begin}, {end}] are out of range (data section is {dataLength} bytes; file truncated?)");
        var info = new SafeTensorInfo(name, dtype, shape, begin, end);
        // Computed exactly so that absurd shapes cannot wrap around to a size that happens to match.
        var expected = shape.Aggregate(System.Numerics.BigInteger.One, (a, b) => a * b) * dtype.BlockBytes(); // safetensors types: one value per block
        if (end - begin != expected)
            throw Error($"tensor '{name}': {end - begin} bytes of data but shape {TensorData.FormatShape(shape)} x {dtypeName} needs {expected}");
        return info;
    }

    /// <summary>The tensors must tile the data section exactly, as the safetensors specification
    /// requires: no overlaps, no gaps, and the last tensor ends where the file ends. A header length
    /// that is off by a byte, or bytes appended to the file, would otherwise shift every tensor.</summary>
    private void CheckLayout(IEnumerable<SafeTensorInfo> tensors, long dataLength)
    {
        SafeTensorInfo? previous = null;
        long end = 0;
        foreach (var info in tensors.OrderBy(t => t.Begin).ThenBy(t => t.End))
        {
            if (info.Begin < end)
                throw Error($"tensors '{previous!.Name}' and '{info.Name}' overlap (data_offsets [{previous.Begin}, {previous.End}] and [{info.Begin}, {info.End}])");
            if (info.Begin > end)
                throw Error($"bytes [{end}, {info.Begin}) of the data section belong to no tensor (before tensor '{info.Name}')");
            if (info.End > info.Begin) previous = info;
            end = info.End;
        }
        if (end != dataLength)
            throw Error($"the data section is {dataLength} bytes but the tensors end at byte {end} (wrong header length, or bytes appended to the file?)");
    }

    /// <summary>Unmaps the file; tensor bytes read from it are invalid afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _map.Dispose();
    }
}
