using System.Text.Json;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>A tensor to write: name, element type, shape and raw little-endian bytes.</summary>
public sealed record SafeTensorOutput(string Name, ElementType Type, int[] Shape, byte[] Bytes);

/// <summary>A tensor's header entry, written before its bytes are produced. Safetensors has no
/// quantized types: a block-quantized spec (Q8_0, Q4_K, ...) is refused.</summary>
public sealed record SafeTensorSpec(string Name, ElementType Type, int[] Shape)
{
    /// <summary>The element type; a quantized type throws <see cref="NotSupportedException"/>.</summary>
    public ElementType Type { get; init; } = Type.IsQuantized()
        ? throw new NotSupportedException($"tensor '{Name}': safetensors has no {Type} type (quantized tensors are written as GGUF)")
        : Type;

    /// <summary>Bytes of the tensor's data.</summary>
    public long ByteCount => Type.ByteCount(Shape);
}

/// <summary>Writes safetensors files, through <see cref="AtomicFile"/>.</summary>
public static class SafeTensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/>, in the order given, and <paramref name="metadata"/> as <c>__metadata__</c> to <paramref name="path"/>, replacing it atomically; a byte count that does not match a shape throws <see cref="ArgumentException"/>.</summary>
    public static void Write(string path, IEnumerable<SafeTensorOutput> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        foreach (var tensor in list)
        {
            var spec = new SafeTensorSpec(tensor.Name, tensor.Type, tensor.Shape);
            if (tensor.Shape.All(d => d >= 0) && spec.ByteCount != tensor.Bytes.LongLength)
                throw new ArgumentException($"tensor '{tensor.Name}': {tensor.Bytes.Length} bytes for shape {TensorData.FormatShape(tensor.Shape)} x {tensor.Type.SafeTensorsName()}");
        }
        Write(path, list.Select(t => new SafeTensorSpec(t.Name, t.Type, t.Shape)).ToList(), (i, stream) => stream.Write(list[i].Bytes), metadata);
    }

    /// <summary>Writes the header for <paramref name="tensors"/>, then has <paramref name="writeTensor"/> write
    /// each tensor's bytes to the file in order, in as many pieces as it likes: nothing of a tensor needs to be
    /// in memory at once. A tensor that writes another number of bytes than its spec needs is refused.</summary>
    public static void Write(string path, IReadOnlyList<SafeTensorSpec> tensors, Action<int, Stream> writeTensor, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var tensor in tensors)
        {
            if (tensor.Name.Length == 0 || tensor.Name == "__metadata__")
                throw new ArgumentException($"{path}: '{tensor.Name}' is not a valid tensor name");
            if (tensor.Shape.Any(d => d < 0))
                throw new ArgumentException($"{path}: tensor '{tensor.Name}' has negative dimensions {TensorData.FormatShape(tensor.Shape)}");
            if (!header.TryAdd(tensor.Name, new Dictionary<string, object>
                {
                    ["dtype"] = tensor.Type.SafeTensorsName(),
                    ["shape"] = tensor.Shape,
                    ["data_offsets"] = new[] { offset, offset + tensor.ByteCount },
                }))
                throw new ArgumentException($"{path}: tensor '{tensor.Name}' is listed twice");
            offset += tensor.ByteCount;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var padding = (8 - json.Length % 8) % 8; // align the data section to 8 bytes
        AtomicFile.Write(path, stream =>
        {
            stream.Write(BitConverter.GetBytes((long)(json.Length + padding)));
            stream.Write(json);
            for (var i = 0; i < padding; i++) stream.WriteByte((byte)' ');
            for (var i = 0; i < tensors.Count; i++)
            {
                var start = stream.Position;
                writeTensor(i, stream);
                if (stream.Position - start != tensors[i].ByteCount)
                    throw new ArgumentException(
                        $"{path}: tensor '{tensors[i].Name}' has {stream.Position - start} bytes but shape {TensorData.FormatShape(tensors[i].Shape)} x {tensors[i].Type.SafeTensorsName()} needs {tensors[i].ByteCount}");
            }
        });
    }
}
