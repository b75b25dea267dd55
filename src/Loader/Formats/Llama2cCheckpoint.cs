using System.Runtime.InteropServices;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A llama2.c legacy checkpoint (<c>run.c</c>'s format): seven int32 header fields (dim, hidden_dim,
/// n_layers, n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared —, seq_len),
/// then float32 arrays. llama2.c rotates adjacent pairs of each head, so the rows of wq and wk are
/// permuted to the engine's halves on import (<see cref="RotaryLayout"/>). llama2.c generation stops
/// when the model emits BOS (token 1), so that is the configuration's stop token.
/// </summary>
public sealed class Llama2cCheckpoint : ModelCheckpoint
{
    private const int HeaderBytes = 7 * sizeof(int);
    private const int Llama2cMagic = 0x616b3432; // "ak42", the header of llama2.c's versioned exports
    private readonly Dictionary<string, (float[] Data, int[] Shape)> _tensors = new();

    public override LlamaConfig Config { get; }
    public override string Source { get; }
    public override string? TokenizerPath { get; }

    private Llama2cCheckpoint(string path)
    {
        Source = path;
        InputFile.Require(path, "model file");
        using var stream = File.OpenRead(path);
        if (stream.Length < HeaderBytes)
            throw new ModelFormatException($"{path}: {stream.Length} bytes, too short for a llama2.c header (is it a llama2.c checkpoint?)");
        var header = new int[7];
        stream.ReadExactly(MemoryMarshal.AsBytes(header.AsSpan()));
        if (header[0] == Llama2cMagic)
            throw new ModelFormatException(
                $"{path}: a llama2.c version {header[1]} export (magic \"ak42\"); only the legacy format (export.py --version 0) is supported");
        var (dim, hidden, layers, heads, kvHeads, vocab, seqLen) = (header[0], header[1], header[2], header[3], header[4], header[5], header[6]);
        var shared = vocab > 0;
        if (vocab == int.MinValue)
            throw new ModelFormatException($"{path}: vocab_size {vocab} in the llama2.c header is not plausible");
        vocab = Math.Abs(vocab);
        Config = new LlamaConfig(dim, hidden, layers, heads, kvHeads, vocab, seqLen, 1e-5f, 10000f, shared, BosId: 1, EosIds: [1])
            .Validate(path + " (llama2.c header)");

        var c = Config;
        long headSize = c.HeadDim;
        // Exact arithmetic: a garbage header must not overflow into a size that happens to match.
        System.Numerics.BigInteger Big(long v) => v;
        var expectedFloats = Big(vocab) * dim + Big(layers) * (2L * dim + 2L * dim * dim + 2L * c.KvDim * dim + 3L * hidden * dim)
            + dim + Big(seqLen) * headSize + (shared ? 0 : Big(vocab) * dim);
        var expectedBytes = HeaderBytes + 4 * expectedFloats;
        if (stream.Length != expectedBytes)
            throw new ModelFormatException(
                $"{path}: {stream.Length} bytes but the header (dim {dim}, hidden {hidden}, layers {layers}, heads {heads}/{kvHeads}, vocab {vocab}, seq_len {seqLen}) implies {expectedBytes}{(stream.Length < expectedBytes ? " (truncated?)" : "")}");

        float[] ReadFloats(long count)
        {
            if (count > Array.MaxLength)
                throw new ModelFormatException($"{path}: a weight of {count} floats is too large to load");
            var values = new float[count];
            // In chunks: a span of bytes cannot cover more than 2 GiB.
            const int chunk = 1 << 28;
            for (long done = 0; done < count; done += chunk)
                stream.ReadExactly(MemoryMarshal.AsBytes(values.AsSpan((int)done, (int)Math.Min(chunk, count - done))));
            return values;
        }
        void PerLayer(string suffix, int rows, int cols, bool permuteHeads = false, int headCount = 0)
        {
            // One layer at a time: all layers of a large model's matrix do not fit in one array.
            for (var l = 0; l < layers; l++)
            {
                var slice = ReadFloats((long)rows * cols);
                if (permuteHeads) slice = RotaryLayout.ToHalves<float>(slice, headCount, c.HeadDim);
                _tensors[Names.Layer(l, suffix)] = (slice, cols == 1 ? [rows] : [rows, cols]);
            }
        }

        _tensors[Names.Embedding] = (ReadFloats((long)vocab * dim), [vocab, dim]);
        PerLayer(Names.AttentionNorm, dim, 1);
        PerLayer(Names.Query, dim, dim, permuteHeads: true, headCount: heads);
        PerLayer(Names.Key, c.KvDim, dim, permuteHeads: true, headCount: kvHeads);
        PerLayer(Names.Value, c.KvDim, dim);
        PerLayer(Names.Output, dim, dim);
        PerLayer(Names.FeedForwardNorm, dim, 1);
        PerLayer(Names.Gate, hidden, dim);
        PerLayer(Names.Down, dim, hidden);
        PerLayer(Names.Up, hidden, dim);
        _tensors[Names.FinalNorm] = (ReadFloats(dim), [dim]);
        stream.Seek(4L * seqLen * headSize, SeekOrigin.Current); // freq_cis_real and freq_cis_imag: recomputed by the engine
        if (!shared) _tensors[Names.LmHead] = (ReadFloats((long)vocab * dim), [vocab, dim]);

        TokenizerPath = FindTokenizer(Path.GetDirectoryName(Path.GetFullPath(path))!, vocab);
    }

    public static new Llama2cCheckpoint Open(string path) =>
        InputFile.Reading(path, () => new Llama2cCheckpoint(path));

    /// <summary>Tokenizer beside a llama2.c checkpoint: a SentencePiece model if present, else llama2.c's own format.</summary>
    private static string? FindTokenizer(string directory, int vocab) =>
        new[] { $"tok{vocab}.model", "tokenizer.model", $"tok{vocab}.bin", "tokenizer.bin" }
            .Select(name => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);

    public override bool Contains(string name) => _tensors.ContainsKey(name);

    protected override TensorData ReadTensor(string name) =>
        _tensors.TryGetValue(name, out var tensor)
            ? TensorData.FromFloats(tensor.Data, tensor.Shape)
            : throw new ModelFormatException($"{Source}: tensor '{name}' is missing");

    protected override string FileOf(string name) => Source;
}
