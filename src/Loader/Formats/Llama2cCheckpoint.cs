using System.Runtime.InteropServices;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A llama2.c legacy checkpoint (<c>run.c</c>'s format): seven int32 header fields (dim, hidden_dim,
/// n_layers, n_heads, n_kv_heads, vocab_size — negative when the classifier is not shared —, seq_len),
/// then float32 arrays, memory-mapped. llama2.c rotates adjacent pairs of each head, so the rows of wq
/// and wk are permuted to the engine's halves when read (<see cref="RotaryLayout"/>). llama2.c generation
/// stops when the model emits BOS (token 1), so that is the configuration's stop token.
/// </summary>
public sealed unsafe class Llama2cCheckpoint : ModelCheckpoint
{
    private const int HeaderBytes = 7 * sizeof(int);
    private const int Llama2cMagic = 0x616b3432; // "ak42", the header of llama2.c's versioned exports
    private readonly MappedFile _map;

    /// <summary>Each tensor's byte offset in the file and shape, in the order llama2.c writes them.</summary>
    private readonly Dictionary<string, (long Offset, int[] Shape)> _tensors = new();

    /// <inheritdoc/>
    public override LlamaConfig Config { get; }
    /// <inheritdoc/>
    public override string Source { get; }
    /// <inheritdoc/>
    public override string? TokenizerPath { get; }

    private Llama2cCheckpoint(string path)
    {
        Source = path;
        InputFile.Require(path, "model file");
        var length = new FileInfo(path).Length;
        if (length < HeaderBytes)
            throw new ModelFormatException($"{path}: {length} bytes, too short for a llama2.c header (is it a llama2.c checkpoint?)");
        var header = new int[7];
        using (var stream = File.OpenRead(path)) stream.ReadExactly(MemoryMarshal.AsBytes(header.AsSpan()));
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
        if (length != expectedBytes)
            throw new ModelFormatException(
                $"{path}: {length} bytes but the header (dim {dim}, hidden {hidden}, layers {layers}, heads {heads}/{kvHeads}, vocab {vocab}, seq_len {seqLen}) implies {expectedBytes}{(length < expectedBytes ? " (truncated?)" : "")}");

        long offset = HeaderBytes;
        void Add(string name, params int[] shape)
        {
            _tensors[name] = (offset, shape);
            offset += 4L * shape.Aggregate(1L, (a, b) => a * b);
        }
        void PerLayer(string suffix, params int[] shape)
        {
            for (var l = 0; l < layers; l++) Add(Names.Layer(l, suffix), shape);
        }
        Add(Names.Embedding, vocab, dim);
        PerLayer(Names.AttentionNorm, dim);
        PerLayer(Names.Query, dim, dim);
        PerLayer(Names.Key, c.KvDim, dim);
        PerLayer(Names.Value, c.KvDim, dim);
        PerLayer(Names.Output, dim, dim);
        PerLayer(Names.FeedForwardNorm, dim);
        PerLayer(Names.Gate, hidden, dim);
        PerLayer(Names.Down, dim, hidden);
        PerLayer(Names.Up, hidden, dim);
        Add(Names.FinalNorm, dim);
        offset += 4L * seqLen * headSize; // freq_cis_real and freq_cis_imag: recomputed by the engine
        if (!shared) Add(Names.LmHead, vocab, dim);

        TokenizerPath = FindTokenizer(Path.GetDirectoryName(Path.GetFullPath(path))!, vocab);
        _map = new MappedFile(path, length);
    }

    /// <summary>Opens a llama2.c checkpoint (<c>.bin</c>: a header of seven int32, then float32 weights), memory-mapped; throws <see cref="ModelFormatException"/> when its header or size is not one.</summary>
    public static new Llama2cCheckpoint Open(string path) =>
        InputFile.Reading(path, () => new Llama2cCheckpoint(path));

    /// <summary>Tokenizer beside a llama2.c checkpoint: a SentencePiece model if present, else llama2.c's own format.</summary>
    private static string? FindTokenizer(string directory, int vocab) =>
        new[] { $"tok{vocab}.model", "tokenizer.model", $"tok{vocab}.bin", "tokenizer.bin" }
            .Select(name => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);

    /// <inheritdoc/>
    public override bool Contains(string name) => _tensors.ContainsKey(name);

    /// <inheritdoc/>
    protected override TensorData ReadTensor(string name)
    {
        if (!_tensors.TryGetValue(name, out var tensor)) throw new ModelFormatException($"{Source}: tensor '{name}' is missing");
        var count = tensor.Shape.Aggregate(1L, (a, b) => a * b);
        if (4 * count > int.MaxValue)
            throw new ModelFormatException($"{Source}: tensor '{name}' is {4 * count} bytes; tensors over 2 GiB cannot be read as one span");
        var floats = new ReadOnlySpan<float>(_map.Start + tensor.Offset, (int)count);
        var heads = Names.RotatedHeads(name, Config);
        if (heads == 0) return TensorData.FromFloats(floats, tensor.Shape);
        return TensorData.FromFloats(RotaryLayout.ToHalves(floats, heads, Config.HeadDim), tensor.Shape);
    }

    /// <summary>None for wq and wk, permuted when read.</summary>
    public override IDisposable? Lease(string name) =>
        _tensors.ContainsKey(name) && Names.RotatedHeads(name, Config) == 0 ? _map.Lease() : null;

    /// <inheritdoc/>
    protected override TensorExtent? ExtentOf(string name) =>
        _tensors.TryGetValue(name, out var tensor) ? new TensorExtent(Source, tensor.Offset, ElementType.F32, tensor.Shape, AdjacentPairs: true) : null;

    /// <inheritdoc/>
    protected override string FileOf(string name) => Source;

    /// <inheritdoc/>
    public override void Dispose()
    {
        _map.Dispose();
        base.Dispose();
    }
}
