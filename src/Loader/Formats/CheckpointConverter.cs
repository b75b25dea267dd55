using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>How far a conversion is: tensors written and bytes of tensor data written, of the totals.</summary>
public readonly record struct ConversionProgress(int Tensors, int TotalTensors, long Bytes, long TotalBytes);

/// <summary>
/// Writes any <see cref="ModelCheckpoint"/> as a Hugging Face Llama directory (<c>config.json</c>,
/// <c>model.safetensors</c> in F32, F16 or BF16 under the Hugging Face tensor names, and the tokenizer
/// as a SentencePiece <c>tokenizer.model</c>) or as a GGUF file that llama.cpp's tools read.
/// The output's layout (every tensor's name, type and shape) comes from the configuration and the
/// source's headers; then each tensor is read, converted and written a block of rows at a time
/// (<see cref="ModelCheckpoint.ReadRows"/>), so a conversion holds a few blocks of
/// <see cref="ModelCheckpoint.RowBlockBytes"/>, whatever the model's size.
/// </summary>
public static class CheckpointConverter
{
    /// <summary>Converts <paramref name="source"/> into <paramref name="outputDirectory"/> (created if needed).
    /// Returns the paths written.</summary>
    public static IReadOnlyList<string> Convert(ModelCheckpoint source, string outputDirectory, ElementType type, Action<ConversionProgress>? progress = null)
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
        var (tokenizer, expected) = CheckSource(source);
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
        var counter = new Counter(specs.Count, specs.Sum(s => s.ByteCount), progress);
        SafeTensorsWriter.Write(weights, specs, (i, stream) => WriteTensor(source, expected[i].Name, expected[i].Shape, type, 0, stream, counter),
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

    /// <summary>
    /// Writes <paramref name="source"/> as a GGUF v3 file of architecture llama, as llama.cpp's converter
    /// does: <c>llama.*</c> configuration keys, llama.cpp's tensor names, q and k rows in adjacent-pair
    /// rotary order, matrices in <paramref name="type"/> (those whose rows are not whole blocks of a
    /// quantized type as stored, as <c>--weights</c> leaves them) and norms in F32, alignment 32, and the tokenizer as
    /// <c>tokenizer.ggml.*</c> (model "llama"). The stop token is written as <c>eos_token_id</c>: for a
    /// llama2.c checkpoint that is BOS, where run.c stops.
    /// </summary>
    public static void ConvertToGguf(ModelCheckpoint source, string outputFile, ElementType type, Action<ConversionProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(outputFile);
        if (!Enum.IsDefined(type)) throw new ArgumentException($"unknown dtype {type}", nameof(type));
        if (source.Files.Any(f => string.Equals(Path.GetFullPath(f), Path.GetFullPath(outputFile), StringComparison.Ordinal)))
            throw new ArgumentException($"{outputFile}: the output file is the model being converted", nameof(outputFile));
        var c = source.Config;
        if (c.AttentionBias || c.SlidingWindow is not null || c.RopeScaling is { Type: not "linear" })
            throw new ArgumentException($"{source.Source}: GGUF's llama architecture has no attention biases, sliding window or {c.RopeScaling?.Type} rope scaling");
        var (tokenizer, expected) = CheckSource(source);
        var specs = expected.Select(t => new GgufTensorSpec(GgufCheckpoint.GgufName(t.Name), TypeInGguf(source, t.Name, t.Shape, type), t.Shape)).ToList();
        var counter = new Counter(specs.Count, specs.Sum(s => s.ByteCount), progress);
        GgufWriter.Write(outputFile, GgufMetadata(source, specs, tokenizer), specs, (i, stream) =>
            WriteTensor(source, expected[i].Name, expected[i].Shape, specs[i].Type, ModelCheckpoint.Names.RotatedHeads(expected[i].Name, c), stream, counter));
    }

    /// <summary>Norms (vectors) are F32, as llama.cpp keeps them; a matrix whose rows are not whole
    /// blocks of a quantized type keeps its stored type, so that the file is the model that
    /// <c>--weights</c> quantizes at load.</summary>
    private static ElementType TypeInGguf(ModelCheckpoint source, string name, int[] shape, ElementType type) =>
        shape.Length == 1 ? ElementType.F32 : shape[^1] % type.BlockLength() != 0 ? source.TypeOf(name) : type;

    private static List<KeyValuePair<string, object>> GgufMetadata(ModelCheckpoint source, IReadOnlyList<GgufTensorSpec> specs, TextTokenizer? tokenizer)
    {
        var c = source.Config;
        var mostly = specs.Where(s => s.Shape.Length == 2).GroupBy(s => s.Type).MaxBy(g => g.Count())!.Key;
        var metadata = new List<KeyValuePair<string, object>>
        {
            new("general.architecture", "llama"),
            new("general.name", Path.GetFileNameWithoutExtension(source.Source.TrimEnd(Path.DirectorySeparatorChar))),
            new("general.alignment", 32u),
            // llama_ftype: all F32, mostly F16, Q4_0, Q4_1, Q8_0, Q5_0, Q5_1, Q3_K (its _S mix), Q4_K (_S),
            // Q5_K (_S), Q6_K, BF16.
            new("general.file_type", mostly switch
            {
                ElementType.F32 => 0u, ElementType.F16 => 1u, ElementType.Q4_0 => 2u, ElementType.Q4_1 => 3u, ElementType.Q8_0 => 7u,
                ElementType.Q5_0 => 8u, ElementType.Q5_1 => 9u, ElementType.Q3_K => 11u, ElementType.Q4_K => 14u, ElementType.Q5_K => 16u,
                ElementType.Q6_K => 18u, ElementType.BF16 => 32u, _ => throw ElementTypes.Unsupported(mostly, "GGUF's general.file_type"),
            }),
            new("llama.vocab_size", (uint)c.VocabSize),
            new("llama.context_length", (uint)c.MaxSeqLen),
            new("llama.embedding_length", (uint)c.Dim),
            new("llama.block_count", (uint)c.Layers),
            new("llama.feed_forward_length", (uint)c.HiddenDim),
            new("llama.rope.dimension_count", (uint)c.HeadDim),
            new("llama.attention.head_count", (uint)c.Heads),
            new("llama.attention.head_count_kv", (uint)c.KvHeads),
            new("llama.attention.key_length", (uint)c.HeadDim),
            new("llama.attention.value_length", (uint)c.HeadDim),
            new("llama.attention.layer_norm_rms_epsilon", c.NormEps),
            new("llama.rope.freq_base", c.RopeTheta),
        };
        if (c.RopeScaling is { } scaling)
        {
            metadata.Add(new("llama.rope.scaling.type", "linear"));
            metadata.Add(new("llama.rope.scaling.factor", (float)scaling.Factor));
        }
        if (tokenizer is null) return metadata;
        var model = tokenizer.Model;
        metadata.AddRange(
        [
            new("tokenizer.ggml.model", "llama"),
            new("tokenizer.ggml.tokens", new GgufArray(GgufValueType.String, model.Pieces.Select(p => p.Piece).ToArray())),
            new("tokenizer.ggml.scores", new GgufArray(GgufValueType.Float32, model.Pieces.Select(p => p.Score).ToArray())),
            new("tokenizer.ggml.token_type", new GgufArray(GgufValueType.Int32, model.Pieces.Select(p => (int)p.Type).ToArray())),
            new("tokenizer.ggml.bos_token_id", (uint)c.BosId),
            new("tokenizer.ggml.eos_token_id", (uint)c.EosIds[0]),
            new("tokenizer.ggml.unknown_token_id", (uint)model.UnknownId),
            new("tokenizer.ggml.add_bos_token", tokenizer.AddsBos),
            new("tokenizer.ggml.add_space_prefix", model.AddDummyPrefix),
            new("tokenizer.ggml.remove_extra_whitespaces", model.RemoveExtraWhitespaces),
        ]);
        return metadata;
    }

    /// <summary>The source's tokenizer (read first: a bad tokenizer should fail before anything is
    /// written) and the tensors its configuration implies, all of which must be there.</summary>
    private static (TextTokenizer? Tokenizer, IReadOnlyList<(string Name, int[] Shape)> Expected) CheckSource(ModelCheckpoint source)
    {
        var config = source.Config;
        if (source.TokenizerPath is { } json && json.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            throw new ModelFormatException($"{json}: a Hugging Face tokenizer.json cannot be converted; only SentencePiece tokenizers can (tokenizer.model, llama2.c's tokenizer.bin, a GGUF's own)");
        TextTokenizer? tokenizer = source.TokenizerPath is { } tokenizerPath ? TextTokenizer.Load(tokenizerPath) : null;
        if (tokenizer is not null && tokenizer.VocabSize > config.VocabSize)
            throw new ModelFormatException($"{tokenizer.Path}: {tokenizer.VocabSize} tokens but the model {source.Source} has a vocabulary of {config.VocabSize}");
        var expected = ModelCheckpoint.Names.Expected(config);
        foreach (var (name, _) in expected)
            if (!source.Contains(name))
                throw new ModelFormatException($"{source.Source}: tensor '{name}' is missing");
        return (tokenizer, expected);
    }

    /// <summary>Reads a tensor of the source a block of rows at a time, converts each block to
    /// <paramref name="type"/> (with <paramref name="adjacentPairHeads"/>, q or k rows permuted to adjacent
    /// pairs) and writes it; refused where narrowing would turn finite values infinite.</summary>
    private static void WriteTensor(ModelCheckpoint source, string name, int[] shape, ElementType type, int adjacentPairHeads, Stream output, Counter counter)
    {
        long overflows = 0;
        using var buffers = new BlockBuffers();
        source.ReadRows(name, shape, (rows, _) =>
        {
            var bytes = Encode(rows, type, buffers, ref overflows);
            if (adjacentPairHeads > 0)
            {
                var pairs = buffers.Permuted(bytes.Length);
                var headDim = source.Config.HeadDim;
                RotaryLayout.ToAdjacentPairs(bytes, pairs, rows.Shape[0] / headDim, headDim);
                bytes = pairs;
            }
            output.Write(bytes);
            counter.Wrote(bytes.Length);
        });
        if (overflows > 0)
            throw new ModelFormatException($"{source.Source}: tensor '{name}' has {overflows} finite values too large for {type} (they would become infinite)");
        counter.Finished();
    }

    /// <summary>The tensor's values as little-endian bytes of <paramref name="type"/>; same-type data is
    /// copied as is, and a quantized type is quantized with llama.cpp's reference rounding
    /// (<see cref="Quantization"/>; rows must be whole blocks).</summary>
    public static byte[] Encode(TensorData tensor, ElementType type)
    {
        long overflows = 0;
        using var buffers = new BlockBuffers();
        return Encode(tensor, type, buffers, ref overflows).ToArray();
    }

    /// <summary>Rows in <paramref name="type"/>, in <paramref name="buffers"/> (or the rows themselves when
    /// they are of that type already), counting the finite values that narrowing made infinite.</summary>
    private static ReadOnlySpan<byte> Encode(TensorData rows, ElementType type, BlockBuffers buffers, ref long overflows)
    {
        if (rows.Type == type) return rows.Bytes;
        var count = checked((int)rows.ElementCount);
        ReadOnlySpan<float> values;
        if (rows.Type == ElementType.F32)
        {
            values = MemoryMarshal.Cast<byte, float>(rows.Bytes);
        }
        else
        {
            var widened = buffers.Values(count);
            TensorData.Widen(rows.Type, rows.Bytes, widened);
            values = widened;
        }
        var output = buffers.Output(checked((int)type.ByteCount(rows.Shape)));
        switch (type)
        {
            case ElementType.F32:
                MemoryMarshal.AsBytes(values).CopyTo(output);
                break;
            case ElementType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(output);
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(values, halves);
                for (var i = 0; i < count; i++)
                    if (Half.IsInfinity(halves[i]) && float.IsFinite(values[i])) overflows++;
                break;
            case ElementType.BF16:
                var bf16 = MemoryMarshal.Cast<byte, ushort>(output);
                for (var i = 0; i < count; i++)
                {
                    bf16[i] = ToBFloat16(values[i]);
                    if ((bf16[i] & 0x7FFF) == 0x7F80 && float.IsFinite(values[i])) overflows++;
                }
                break;
            case var _ when type.IsQuantized():
                Quantization.Quantize(type, values, output);
                break;
            default:
                throw ElementTypes.Unsupported(type, "conversion");
        }
        return output;
    }

    /// <summary>The buffers one tensor's blocks are converted in, rented once and reused for every block.</summary>
    private sealed class BlockBuffers : IDisposable
    {
        private float[]? _values;
        private byte[]? _output;
        private byte[]? _permuted;

        public Span<float> Values(int count) => Rent(ref _values, count).AsSpan(0, count);
        public Span<byte> Output(int count) => Rent(ref _output, count).AsSpan(0, count);
        public Span<byte> Permuted(int count) => Rent(ref _permuted, count).AsSpan(0, count);

        private static T[] Rent<T>(ref T[]? buffer, int count)
        {
            if (buffer is not null && buffer.Length >= count) return buffer;
            if (buffer is not null) ArrayPool<T>.Shared.Return(buffer);
            return buffer = ArrayPool<T>.Shared.Rent(count);
        }

        public void Dispose()
        {
            if (_values is not null) ArrayPool<float>.Shared.Return(_values);
            if (_output is not null) ArrayPool<byte>.Shared.Return(_output);
            if (_permuted is not null) ArrayPool<byte>.Shared.Return(_permuted);
        }
    }

    /// <summary>Counts what a conversion has written and tells <see cref="ConversionProgress"/> to its listener.</summary>
    private sealed class Counter(int tensors, long bytes, Action<ConversionProgress>? listener)
    {
        private int _tensors;
        private long _bytes;

        public void Wrote(int count)
        {
            _bytes += count;
            listener?.Invoke(new ConversionProgress(_tensors, tensors, _bytes, bytes));
        }

        public void Finished()
        {
            _tensors++;
            listener?.Invoke(new ConversionProgress(_tensors, tensors, _bytes, bytes));
        }
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
