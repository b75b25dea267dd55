using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Kangaroo.Native.Tests.Loader;

/// <summary>
/// Files that other tools wrote, read by a parser of the tests' own: the tensor directory and data of
/// a GGUF file (versions 2 and 3) and the tensors of a safetensors file. The product's readers are
/// what is under test, so comparisons with llama.cpp's bytes go through this instead.
/// </summary>
public static class LlamaCppFiles
{
    public const uint F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8;

    /// <summary>The block types of llama.cpp's standard mixes by ggml id, as ggml-common.h sizes them:
    /// (name, values per block, bytes per block).</summary>
    public static readonly IReadOnlyDictionary<uint, (string Name, int Length, int Bytes)> BlockTypes = new Dictionary<uint, (string, int, int)>
    {
        [2] = ("Q4_0", 32, 18), [3] = ("Q4_1", 32, 20), [6] = ("Q5_0", 32, 22), [7] = ("Q5_1", 32, 24), [8] = ("Q8_0", 32, 34),
        [10] = ("Q2_K", 256, 84), [11] = ("Q3_K", 256, 110), [12] = ("Q4_K", 256, 144), [13] = ("Q5_K", 256, 176), [14] = ("Q6_K", 256, 210),
    };

    /// <summary>A tensor: ggml type id, dims innermost first (ne0 = row length), its bytes for the
    /// types this reader sizes (F32, F16, <see cref="BlockTypes"/>), else null.</summary>
    public sealed record Tensor(string Name, uint Type, long[] Dims, byte[]? Bytes)
    {
        public long Count => Dims.Aggregate(1L, (a, b) => a * b);

        /// <summary>The values of an F32 or F16 tensor (F16 widened exactly).</summary>
        public float[] Floats() => Type switch
        {
            F32 => MemoryMarshal.Cast<byte, float>(Bytes!.AsSpan()).ToArray(),
            F16 => MemoryMarshal.Cast<byte, Half>(Bytes!.AsSpan()).ToArray().Select(h => (float)h).ToArray(),
            _ => throw new InvalidOperationException($"{Name}: ggml type {Type} is not F32 or F16"),
        };
    }

    public sealed record Gguf(uint Version, IReadOnlyDictionary<string, object> Metadata, IReadOnlyList<Tensor> Tensors)
    {
        public Tensor this[string name] => Tensors.Single(t => t.Name == name);
    }

    public static Gguf ReadGguf(string path)
    {
        var file = File.ReadAllBytes(path);
        var at = 0;
        uint U32() { var v = BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at)); at += 4; return v; }
        ulong U64() { var v = BinaryPrimitives.ReadUInt64LittleEndian(file.AsSpan(at)); at += 8; return v; }
        string Text() { var n = (int)U64(); var s = Encoding.UTF8.GetString(file, at, n); at += n; return s; }
        object Value(uint type)
        {
            switch (type)
            {
                case 0: at += 1; return file[at - 1];
                case 1: at += 1; return (sbyte)file[at - 1];
                case 2: at += 2; return BinaryPrimitives.ReadUInt16LittleEndian(file.AsSpan(at - 2));
                case 3: at += 2; return BinaryPrimitives.ReadInt16LittleEndian(file.AsSpan(at - 2));
                case 4: return U32();
                case 5: return (int)U32();
                case 6: return BitConverter.UInt32BitsToSingle(U32());
                case 7: at += 1; return file[at - 1] != 0;
                case 8: return Text();
                case 9:
                    var element = U32();
                    var count = (long)U64();
                    var items = new object[count];
                    for (var i = 0; i < count; i++) items[i] = Value(element);
                    return items;
                case 10: return U64();
                case 11: return (long)U64();
                case 12: return BitConverter.UInt64BitsToDouble(U64());
                default: throw new InvalidDataException($"{path}: metadata type {type}");
            }
        }

        if (U32() != 0x46554747) throw new InvalidDataException($"{path}: not GGUF");
        var version = U32();
        if (version is not (2 or 3)) throw new InvalidDataException($"{path}: GGUF version {version} (this reader: 2 and 3)");
        var tensorCount = (int)U64();
        var keyCount = (int)U64();
        var metadata = new Dictionary<string, object>();
        for (var i = 0; i < keyCount; i++)
        {
            var key = Text();
            metadata[key] = Value(U32());
        }
        var infos = new List<(string Name, uint Type, long[] Dims, long Offset)>();
        for (var i = 0; i < tensorCount; i++)
        {
            var name = Text();
            var dims = new long[U32()];
            for (var d = 0; d < dims.Length; d++) dims[d] = (long)U64();
            var type = U32();
            infos.Add((name, type, dims, (long)U64()));
        }
        var alignment = metadata.TryGetValue("general.alignment", out var a) ? Convert.ToInt32(a) : 32;
        var data = (at + alignment - 1) / alignment * alignment;
        var tensors = infos.Select(t =>
        {
            var count = t.Dims.Aggregate(1L, (x, y) => x * y);
            long? size = t.Type switch
            {
                F32 => count * 4,
                F16 => count * 2,
                _ when BlockTypes.TryGetValue(t.Type, out var block) => count / block.Length * block.Bytes,
                _ => null,
            };
            return new Tensor(t.Name, t.Type, t.Dims, size is { } n ? file.AsSpan((int)(data + t.Offset), (int)n).ToArray() : null);
        }).ToList();
        return new Gguf(version, metadata, tensors);
    }

    /// <summary>The F32 tensors of a safetensors file by name (shape as stored, outermost first).</summary>
    public static Dictionary<string, (int[] Shape, float[] Values)> ReadSafeTensorsF32(string path)
    {
        var file = File.ReadAllBytes(path);
        var headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(file);
        using var header = JsonDocument.Parse(file.AsMemory(8, headerLength));
        var result = new Dictionary<string, (int[], float[])>();
        foreach (var entry in header.RootElement.EnumerateObject().Where(e => e.Name != "__metadata__"))
        {
            if (entry.Value.GetProperty("dtype").GetString() != "F32") throw new InvalidDataException($"{path}: {entry.Name} is not F32");
            var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(o => o.GetInt32()).ToArray();
            var values = MemoryMarshal.Cast<byte, float>(file.AsSpan(8 + headerLength + offsets[0], offsets[1] - offsets[0])).ToArray();
            result[entry.Name] = (entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()).ToArray(), values);
        }
        return result;
    }

    /// <summary>llama.cpp's converter's permutation of q and k rows (convert_hf_to_gguf.py `permute`):
    /// within each head of <paramref name="headDim"/> rows, row half * headDim/2 + i goes to 2i + half,
    /// so that RoPE rotates adjacent pairs.</summary>
    public static float[] PermuteForAdjacentPairs(float[] rows, int rowCount, int columns, int heads)
    {
        var headDim = rowCount / heads;
        var result = new float[rows.Length];
        for (var h = 0; h < heads; h++)
            for (var half = 0; half < 2; half++)
                for (var i = 0; i < headDim / 2; i++)
                    Array.Copy(rows, (h * headDim + half * headDim / 2 + i) * columns, result, (h * headDim + 2 * i + half) * columns, columns);
        return result;
    }
}
