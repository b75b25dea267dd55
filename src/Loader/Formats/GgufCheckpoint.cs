using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A llama model in a GGUF file. The configuration comes from the <c>llama.*</c> metadata, the weights
/// from llama.cpp's tensor names (<c>token_embd</c>, <c>blk.N.attn_q</c>, ..., <c>output_norm</c>, and
/// <c>output</c>, absent when the LM head is tied to <c>token_embd</c>), read under their Hugging Face
/// names. llama.cpp stores the rows of q and k in adjacent-pair rotary order; they are permuted back to
/// halves (<see cref="RotaryLayout"/>) when read, whole rows at a time, so quantized rows stay quantized.
/// The tokenizer is the file itself (<c>tokenizer.ggml.*</c>, read by <see cref="TextTokenizer.Load"/>).
/// </summary>
public sealed class GgufCheckpoint : ModelCheckpoint
{
    private readonly GgufFile _file;

    /// <summary>The GGUF name of each Hugging Face name the configuration uses.</summary>
    private readonly Dictionary<string, string> _ggufNames = new(StringComparer.Ordinal);

    /// <inheritdoc/>
    public override LlamaConfig Config { get; }
    /// <inheritdoc/>
    public override string Source => _file.Path;
    /// <inheritdoc/>
    public override string? TokenizerPath { get; }
    /// <inheritdoc/>
    public override IReadOnlyList<string> Files => [Source];

    private GgufCheckpoint(GgufFile file)
    {
        _file = file;
        Config = ReadConfig(file);
        foreach (var (name, _) in Names.Expected(Config)) _ggufNames[name] = GgufName(name);
        _ggufNames[Names.LmHead] = GgufName(Config.TiedEmbeddings ? Names.Embedding : Names.LmHead);
        var used = _ggufNames.Values.ToHashSet();
        foreach (var name in file.Tensors.Keys)
            if (!used.Contains(name))
                throw Error($"tensor '{name}' is not used by a llama model of {Config.Layers} blocks (other architectures, biases and rope_freqs are not supported)");
        TokenizerPath = file.Metadata.ContainsKey("tokenizer.ggml.model") ? file.Path : null;
    }

    /// <summary>Opens a GGUF model file of the llama architecture and reads its configuration from the metadata; throws <see cref="ModelFormatException"/> naming the file when it is not one.</summary>
    public static new GgufCheckpoint Open(string path)
    {
        var file = GgufFile.Open(path);
        try
        {
            return new GgufCheckpoint(file);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>llama.cpp's names of a transformer block's weights, beside the Hugging Face names.</summary>
    private static readonly (string Gguf, string Hf)[] LayerNames =
    [
        ("attn_norm", Names.AttentionNorm), ("attn_q", Names.Query), ("attn_k", Names.Key), ("attn_v", Names.Value),
        ("attn_output", Names.Output), ("ffn_norm", Names.FeedForwardNorm), ("ffn_gate", Names.Gate), ("ffn_up", Names.Up),
        ("ffn_down", Names.Down),
    ];

    /// <summary>The GGUF name (llama.cpp's) of a weight's Hugging Face name.</summary>
    public static string GgufName(string hfName)
    {
        switch (hfName)
        {
            case Names.Embedding: return "token_embd.weight";
            case Names.FinalNorm: return "output_norm.weight";
            case Names.LmHead: return "output.weight";
        }
        const string prefix = "model.layers.";
        var dot = hfName.IndexOf('.', prefix.Length);
        if (hfName.StartsWith(prefix, StringComparison.Ordinal) && dot > 0)
        {
            var suffix = hfName[(dot + 1)..];
            foreach (var (gguf, hf) in LayerNames)
                if (hf == suffix) return $"blk.{hfName[prefix.Length..dot]}.{gguf}.weight";
        }
        throw new ArgumentException($"'{hfName}' has no GGUF name for a llama model", nameof(hfName));
    }

    private ModelFormatException Error(string problem) => new($"{Source}: {problem}");

    private static LlamaConfig ReadConfig(GgufFile file)
    {
        ModelFormatException Error(string problem) => new($"{file.Path}: {problem}");
        var architecture = file.String("general.architecture") ?? throw Error("metadata 'general.architecture' is missing");
        if (architecture != "llama") throw Error($"architecture '{architecture}' is not supported (supported: llama)");
        int Int(string key, int? fallback = null)
        {
            var value = file.Integer(key);
            if (value is null) return fallback ?? throw Error($"metadata '{key}' is missing");
            return value is >= 0 and <= LlamaConfig.MaxDimension ? (int)value : throw Error($"metadata '{key}' is {value}, not a plausible size (0 to {LlamaConfig.MaxDimension})");
        }
        float Float(string key, float? fallback = null) =>
            (float?)file.Number(key) ?? fallback ?? throw Error($"metadata '{key}' is missing");

        if (file.Integer("llama.expert_count") is > 0)
            throw Error($"llama.expert_count {file.Integer("llama.expert_count")}: mixture-of-experts models are not supported");
        var dim = Int("llama.embedding_length");
        var heads = Int("llama.attention.head_count");
        var embedding = file.Tensors.GetValueOrDefault("token_embd.weight") ?? throw Error("tensor 'token_embd.weight' is missing");
        var config = new LlamaConfig(
            Dim: dim,
            HiddenDim: Int("llama.feed_forward_length"),
            Layers: Int("llama.block_count"),
            Heads: heads,
            KvHeads: Int("llama.attention.head_count_kv", heads),
            VocabSize: Int("llama.vocab_size", embedding.Shape[0]),
            MaxSeqLen: Int("llama.context_length"),
            NormEps: Float("llama.attention.layer_norm_rms_epsilon"),
            RopeTheta: Float("llama.rope.freq_base", 10000f),
            TiedEmbeddings: !file.Contains("output.weight"),
            BosId: Int("tokenizer.ggml.bos_token_id", 1),
            EosIds: [Int("tokenizer.ggml.eos_token_id", 2)])
        {
            RopeScaling = ReadRopeScaling(file),
        };
        var keyLength = file.Integer("llama.attention.key_length");
        if (keyLength is not null)
        {
            if (file.Integer("llama.attention.value_length") is { } valueLength && valueLength != keyLength)
                throw Error($"llama.attention.key_length {keyLength} and value_length {valueLength} differ; the engine needs one head size");
            config = config with { HeadDim = Int("llama.attention.key_length") };
        }
        if (file.Integer("llama.rope.dimension_count") is { } rotary && rotary != config.HeadDim)
            throw Error($"llama.rope.dimension_count {rotary} is not the head size {config.HeadDim}: partial rotary embeddings are not supported");
        return config.RequirePlausibleSizes(file.Path).Validate(file.Path);
    }

    /// <summary>llama.cpp's rope scaling keys: none, or linear with a factor (also the older <c>rope.scale_linear</c>).</summary>
    private static RopeScaling? ReadRopeScaling(GgufFile file)
    {
        var type = file.String("llama.rope.scaling.type");
        var factor = file.Number("llama.rope.scaling.factor") ?? file.Number("llama.rope.scale_linear");
        if (type is null && factor is null or 1.0) return null;
        if (type is not (null or "none" or "linear"))
            throw new ModelFormatException($"{file.Path}: llama.rope.scaling.type '{type}' is not supported (supported: none, linear)");
        if (type == "none") return null;
        return factor is > 0 and < double.PositiveInfinity
            ? new RopeScaling("linear", factor.Value)
            : throw new ModelFormatException($"{file.Path}: linear rope scaling needs a positive llama.rope.scaling.factor (got {factor?.ToString() ?? "none"})");
    }

    /// <inheritdoc/>
    public override bool Contains(string name) => _ggufNames.TryGetValue(name, out var gguf) && _file.Contains(gguf);

    /// <inheritdoc/>
    protected override TensorData ReadTensor(string name)
    {
        if (!_ggufNames.TryGetValue(name, out var gguf)) throw Error($"tensor '{name}' is missing");
        var tensor = _file.Read(gguf);
        var heads = Names.RotatedHeads(name, Config);
        // A shape the configuration does not imply is left as it is, for the caller's shape check to name.
        if (heads == 0 || tensor.Shape is not [var rows, _] || rows != heads * Config.HeadDim) return tensor;
        return new TensorData(tensor.Type, tensor.Shape, RotaryLayout.ToHalves(tensor.Bytes, heads, Config.HeadDim));
    }

    /// <summary>None for q and k (permuted when read) and for a tensor whose rows are not whole blocks (dequantized when read).</summary>
    public override IDisposable? Lease(string name) =>
        Names.RotatedHeads(name, Config) == 0 && _ggufNames.TryGetValue(name, out var gguf) && _file.Contains(gguf)
        && _file.Info(gguf).Shape[^1] % _file.Info(gguf).Type.BlockLength() == 0
            ? _file.Lease()
            : null;

    /// <summary>F32 for a tensor whose rows are not whole blocks, which <see cref="GgufFile.Read"/> dequantizes.</summary>
    protected override ElementType? StoredTypeOf(string name) =>
        _ggufNames.TryGetValue(name, out var gguf) && _file.Contains(gguf) ? ElementType.F32 : null;

    /// <summary>None for a tensor whose rows are not whole blocks: <see cref="GgufFile.Read"/> dequantizes it whole.</summary>
    protected override TensorExtent? ExtentOf(string name)
    {
        if (!_ggufNames.TryGetValue(name, out var gguf) || !_file.Contains(gguf)) return null;
        var info = _file.Info(gguf);
        if (info.Shape[^1] % info.Type.BlockLength() != 0) return null;
        return new TensorExtent(Source, _file.DataOffset + info.Offset, info.Type, info.Shape, AdjacentPairs: true);
    }

    /// <inheritdoc/>
    protected override string FileOf(string name) => Source;

    /// <inheritdoc/>
    public override void Dispose()
    {
        _file.Dispose();
        base.Dispose();
    }
}
