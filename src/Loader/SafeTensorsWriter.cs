using System.Text.Json;

namespace Kangaroo.Native.Loader;

/// <summary>A tensor to write: name, element type, shape and raw little-endian bytes.</summary>
public sealed record SafeTensorOutput(string Name, DType Type, int[] Shape, byte[] Bytes);

/// <summary>Writes safetensors files. The file is written beside its destination under a temporary
/// name and renamed into place, so an interrupted write never leaves a half-written file.</summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<SafeTensorOutput> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var header = new Dictionary<string, object>();
        if (metadata is { Count: > 0 }) header["__metadata__"] = metadata;
        long offset = 0;
        foreach (var tensor in list)
        {
            var expected = tensor.Shape.Aggregate(1L, (a, b) => a * b) * tensor.Type.Size();
            if (expected != tensor.Bytes.Length)
                throw new ArgumentException($"tensor '{tensor.Name}': {tensor.Bytes.Length} bytes for shape {TensorData.FormatShape(tensor.Shape)}");
            header[tensor.Name] = new Dictionary<string, object>
            {
                ["dtype"] = tensor.Type.SafeTensorsName(),
                ["shape"] = tensor.Shape,
                ["data_offsets"] = new[] { offset, offset + tensor.Bytes.Length },
            };
            offset += tensor.Bytes.Length;
        }
        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        var padding = (8 - json.Length % 8) % 8; // align the data section to 8 bytes
        var full = Path.GetFullPath(path);
        var temporary = full + ".tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write))
            {
                stream.Write(BitConverter.GetBytes((long)(json.Length + padding)));
                stream.Write(json);
                for (var i = 0; i < padding; i++) stream.WriteByte((byte)' ');
                foreach (var tensor in list) stream.Write(tensor.Bytes);
            }
            File.Move(temporary, full, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{path}: cannot write ({e.Message})", e);
        }
    }
}
