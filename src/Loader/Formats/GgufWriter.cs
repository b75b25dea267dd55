using System.Text;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>A tensor's entry in a GGUF file, written before its bytes are produced: name, element type
/// and shape (outermost dimension first; the file stores it innermost first).</summary>
public sealed record GgufTensorSpec(string Name, ElementType Type, int[] Shape)
{
    /// <summary>Bytes of the tensor's data.</summary>
    public long ByteCount => Type.ByteCount(Shape);
}

/// <summary>
/// Writes GGUF files (version 3 unless asked otherwise) as <see cref="GgufFile"/> reads them: the
/// header, metadata in the order given, tensor infos, then each tensor at the next multiple of
/// <c>general.alignment</c> (32 unless the metadata sets it). Metadata values are the .NET types
/// <see cref="GgufFile.Metadata"/> gives (byte ... double, bool, string, <see cref="GgufArray"/>).
/// Written through <see cref="AtomicFile"/>.
/// </summary>
public static class GgufWriter
{
    /// <summary>Writes the header and infos, then has <paramref name="writeTensor"/> write each tensor's bytes
    /// to the file in order, in as many pieces as it likes: nothing of a tensor needs to be in memory at once.
    /// A tensor that writes another number of bytes than its spec needs is refused.</summary>
    public static void Write(string path, IReadOnlyList<KeyValuePair<string, object>> metadata, IReadOnlyList<GgufTensorSpec> tensors,
        Action<int, Stream> writeTensor, uint version = 3)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (version is < 1 or > 3) throw new ArgumentException($"GGUF version {version} cannot be written (1, 2 or 3)", nameof(version));
        var alignment = metadata.Where(m => m.Key == "general.alignment").Select(m => m.Value).FirstOrDefault() switch
        {
            null => 32,
            uint value and > 0 when value % 8 == 0 => (int)value,
            var other => throw new ArgumentException($"general.alignment {other} is not a uint32 multiple of 8"),
        };
        var offsets = new long[tensors.Count];
        long end = 0;
        for (var i = 0; i < tensors.Count; i++)
        {
            offsets[i] = Align(end, alignment);
            end = offsets[i] + tensors[i].ByteCount;
        }
        AtomicFile.Write(path, stream =>
        {
            var writer = new Writer(new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true), version);
            writer.Raw.Write("GGUF"u8);
            writer.Raw.Write(version);
            writer.Length(tensors.Count);
            writer.Length(metadata.Count);
            foreach (var (key, value) in metadata)
            {
                writer.String(key);
                writer.Raw.Write((uint)TypeOf(value, key));
                writer.Value(value, key);
            }
            for (var i = 0; i < tensors.Count; i++)
            {
                var (name, type, shape) = tensors[i];
                writer.String(name);
                writer.Raw.Write((uint)shape.Length);
                foreach (var dimension in shape.Reverse()) writer.Length(dimension);
                writer.Raw.Write(type.Info().GgmlId);
                writer.Raw.Write((ulong)offsets[i]);
            }
            writer.Raw.Flush();
            var dataStart = Align(stream.Position, alignment);
            Pad(stream, dataStart);
            for (var i = 0; i < tensors.Count; i++)
            {
                Pad(stream, dataStart + offsets[i]);
                writeTensor(i, stream);
                if (stream.Position - dataStart - offsets[i] != tensors[i].ByteCount)
                    throw new ArgumentException($"{path}: tensor '{tensors[i].Name}' has {stream.Position - dataStart - offsets[i]} bytes but {TensorData.FormatShape(tensors[i].Shape)} x {tensors[i].Type} needs {tensors[i].ByteCount}");
            }
        });
    }

    private static long Align(long offset, int alignment) => (offset + alignment - 1) / alignment * alignment;

    private static void Pad(Stream stream, long position)
    {
        while (stream.Position < position) stream.WriteByte(0);
    }

    private static GgufValueType TypeOf(object value, string key) =>
        GgufFile.TypeOf(value) ?? throw new ArgumentException($"metadata '{key}': {value.GetType().Name} is not a GGUF value type");

    private sealed class Writer(BinaryWriter raw, uint version)
    {
        public BinaryWriter Raw { get; } = raw;

        /// <summary>A count or length: u32 in version 1, u64 after.</summary>
        public void Length(long length)
        {
            if (version == 1) Raw.Write(checked((uint)length));
            else Raw.Write((ulong)length);
        }

        public void String(string text)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            Length(bytes.Length);
            Raw.Write(bytes);
        }

        public void Value(object value, string key)
        {
            switch (value)
            {
                case byte v: Raw.Write(v); break;
                case sbyte v: Raw.Write(v); break;
                case ushort v: Raw.Write(v); break;
                case short v: Raw.Write(v); break;
                case uint v: Raw.Write(v); break;
                case int v: Raw.Write(v); break;
                case float v: Raw.Write(v); break;
                case bool v: Raw.Write(v); break;
                case string v: String(v); break;
                case ulong v: Raw.Write(v); break;
                case long v: Raw.Write(v); break;
                case double v: Raw.Write(v); break;
                case GgufArray array:
                    Raw.Write((uint)array.ElementType);
                    Length(array.Items.Length);
                    foreach (var item in array.Items)
                    {
                        if (TypeOf(item, key) != array.ElementType)
                            throw new ArgumentException($"metadata '{key}': an item of type {TypeOf(item, key)} in an array of {array.ElementType}");
                        Value(item, key);
                    }
                    break;
            }
        }
    }
}
