using System.Runtime.InteropServices;
using System.Text;

namespace Kangaroo.Native.Loader;

/// <summary>
/// Writes any <see cref="ModelCheckpoint"/> (in practice a llama2.c <c>.bin</c>) as a Hugging Face Llama
/// directory: <c>config.json</c>, <c>model.safetensors</c> in F32, F16 or BF16 under the Hugging Face
/// tensor names, and the tokenizer as a SentencePiece <c>tokenizer.model</c>.
/// </summary>
public static class CheckpointConverter
{
    /// <summary>Converts <paramref name="source"/> into <paramref name="outputDirectory"/> (created if needed).
    /// Returns the paths written.</summary>
    public static IReadOnlyList<string> Convert(ModelCheckpoint source, string outputDirectory, DType type)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        if (!Enum.IsDefined(type)) throw new ArgumentException($"unknown dtype {type}", nameof(type));
        if (type.IsQuantized())
            throw new ArgumentException($"{outputDirectory}: a Hugging Face directory holds safetensors, which has no {type} type", nameof(type));
        var output = Path.GetFullPath(outputDirectory);
        if (string.Equals(output.TrimEnd(Path.DirectorySeparatorChar), Path.GetFullPath(source.Source).TrimEnd(Path.DirectorySeparatorChar), StringComparison.Ordinal))
            throw new ArgumentException($"{outputDirectory}: the output directory is the model being converted", nameof(outputDirectory));

        var config = source.Config;
        // Read the tokenizer first: a bad tokenizer should fail before anything is written.
        TextTokenizer? tokenizer = source.TokenizerPath is { } tokenizerPath ? TextTokenizer.Load(tokenizerPath) : null;
        if (tokenizer is not null && tokenizer.VocabSize > config.VocabSize)
            throw new ModelFormatException($"{tokenizer.Path}: {tokenizer.VocabSize} tokens but the model {source.Source} has a vocabulary of {config.VocabSize}");

        var expected = ModelCheckpoint.Names.Expected(config);
        foreach (var (name, _) in expected)
            if (!source.Contains(name))
                throw new ModelFormatException($"{source.Source}: tensor '{name}' is missing");

        try
        {
            Directory.CreateDirectory(output);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"{outputDirectory}: cannot create directory ({e.Message})", e);
        }
        var written = new List<string>();
        var specs = expected.Select(t => new SafeTensorSpec(t.Name, type, t.Shape)).ToList();
        var weights = Path.Combine(output, "model.safetensors");
        SafeTensorsWriter.Write(weights, specs, i =>
            {
                var tensor = source.Read(expected[i].Name, expected[i].Shape);
                var bytes = Encode(tensor, type);
                if (tensor.Type != type && type != DType.F32 && CountOverflows(tensor, bytes, type) is var overflows and > 0)
                    throw new ModelFormatException(
                        $"{source.Source}: tensor '{expected[i].Name}' has {overflows} finite values too large for {type.SafeTensorsName()} (they would become infinite)");
                return bytes;
            },
            new Dictionary<string, string> { ["format"] = "pt" });
        written.Add(weights);

        var configPath = Path.Combine(output, "config.json");
        File.WriteAllText(configPath, config.ToJson() + "\n", new UTF8Encoding(false));
        written.Add(configPath);

        if (tokenizer is not null)
        {
            var tokenizerOut = Path.Combine(output, "tokenizer.model");
            File.WriteAllBytes(tokenizerOut, tokenizer.ToModelProto());
            written.Add(tokenizerOut);
        }
        return written;
    }

    /// <summary>The tensor's values as little-endian bytes of <paramref name="type"/>; same-type data is
    /// copied as is, and a quantized type is quantized with llama.cpp's reference rounding
    /// (<see cref="Quantization"/>; rows must be whole blocks).</summary>
    public static byte[] Encode(TensorData tensor, DType type)
    {
        if (tensor.Type == type) return tensor.Bytes.ToArray();
        var values = tensor.ToFloats();
        switch (type)
        {
            case DType.F32:
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case DType.F16:
                var halves = new Half[values.Length];
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, halves);
                return MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
            case DType.BF16:
                var result = new byte[values.Length * 2];
                var bf16 = MemoryMarshal.Cast<byte, ushort>(result.AsSpan());
                for (var i = 0; i < values.Length; i++) bf16[i] = ToBFloat16(values[i]);
                return result;
            default:
                var blocks = new byte[type.ByteCount(tensor.Shape)];
                Quantization.Quantize(type, values, blocks);
                return blocks;
        }
    }

    private static int CountOverflows(TensorData original, byte[] narrowed, DType type)
    {
        var before = original.ToFloats();
        var after = new float[before.Length];
        TensorData.Widen(type, narrowed, after);
        var count = 0;
        for (var i = 0; i < before.Length; i++)
            if (float.IsFinite(before[i]) && !float.IsFinite(after[i])) count++;
        return count;
    }

    /// <summary>bfloat16 bits of a float, rounded to nearest with ties to even; NaN stays a (quiet) NaN.</summary>
    public static ushort ToBFloat16(float value)
    {
        var bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value)) return (ushort)((bits >> 16) | 0x0040);
        var roundingBias = 0x7FFFu + ((bits >> 16) & 1);
        return (ushort)((bits + roundingBias) >> 16);
    }
}
