using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kangaroo.Native.Loader;

/// <summary>Rotary frequency scaling from config.json's <c>rope_scaling</c>: "linear" divides every
/// frequency by <see cref="Factor"/>; "llama3" divides the low frequencies (wavelengths longer than
/// original / low_freq_factor) by it, keeps the high ones (shorter than original / high_freq_factor) and
/// blends in between, as transformers' <c>_compute_llama3_parameters</c> does.</summary>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositions = 8192)
{
    /// <summary>The scaled inverse frequency of one rotary pair.</summary>
    public double Apply(double inverseFrequency)
    {
        if (Type == "linear") return inverseFrequency / Factor;
        var wavelength = 2 * Math.PI / inverseFrequency;
        if (wavelength < OriginalMaxPositions / HighFreqFactor) return inverseFrequency;
        if (wavelength > OriginalMaxPositions / LowFreqFactor) return inverseFrequency / Factor;
        var smooth = (OriginalMaxPositions / wavelength - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * inverseFrequency / Factor + smooth * inverseFrequency;
    }
}

/// <summary>The shape and constants of a Llama-family transformer (Llama 2/3, TinyLlama, Mistral, Qwen2).</summary>
public sealed record LlamaConfig(
    int Dim,
    int HiddenDim,
    int Layers,
    int Heads,
    int KvHeads,
    int VocabSize,
    int MaxSeqLen,
    float NormEps,
    float RopeTheta,
    bool TiedEmbeddings,
    int BosId,
    IReadOnlyList<int> EosIds)
{
    private readonly int? _headDim;

    /// <summary>Size of one attention head: config.json's <c>head_dim</c>, else hidden size / heads.</summary>
    public int HeadDim { get => _headDim ?? (Heads > 0 ? Dim / Heads : 0); init => _headDim = value; }

    /// <summary>Width of the query and attention output: heads * head size (the hidden size unless head_dim says otherwise).</summary>
    public int QueryDim => Heads * HeadDim;
    /// <summary>Width of the key and value projections: kv heads * head size.</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Whether the q, k and v projections have biases (Qwen2, or <c>attention_bias</c>).</summary>
    public bool AttentionBias { get; init; }

    /// <summary>Rotary frequency scaling (config.json's <c>rope_scaling</c>); null when there is none.</summary>
    public RopeScaling? RopeScaling { get; init; }

    /// <summary>Attention sees only this many past positions (Mistral's <c>sliding_window</c>); null when
    /// it sees all. The engine attends to everything, so a context longer than this is refused.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary>The largest value config.json may give a dimension or the context: more is a damaged or
    /// hostile file, refused before anything is allocated from it.</summary>
    public const int MaxDimension = 1 << 24;

    /// <summary>Inverse frequency theta^(-2i/headDim) of each rotary pair i, scaled by <see cref="RopeScaling"/>.</summary>
    public double[] RopeFrequencies() => Enumerable.Range(0, HeadDim / 2)
        .Select(i => Math.Pow(RopeTheta, -2.0 * i / HeadDim))
        .Select(f => RopeScaling?.Apply(f) ?? f)
        .ToArray();

    /// <summary>Throws when the numbers cannot describe a working model; <paramref name="source"/> names the file.</summary>
    public LlamaConfig Validate(string source)
    {
        void Require(bool ok, string problem)
        {
            if (!ok) throw new ModelFormatException($"{source}: {problem}");
        }
        Require(Dim > 0 && HiddenDim > 0 && Layers > 0 && Heads > 0 && KvHeads > 0 && VocabSize > 0 && MaxSeqLen > 0 && HeadDim > 0,
            $"dimensions must be positive (dim {Dim}, hidden {HiddenDim}, layers {Layers}, heads {Heads}, kv heads {KvHeads}, vocab {VocabSize}, context {MaxSeqLen})");
        Require(_headDim is not null || Dim % Heads == 0, $"hidden size {Dim} is not a multiple of the {Heads} attention heads");
        Require(HeadDim % 2 == 0, $"head size {HeadDim} must be even for rotary embeddings");
        Require(Heads % KvHeads == 0, $"{Heads} attention heads are not a multiple of the {KvHeads} key/value heads");
        Require(NormEps > 0 && float.IsFinite(NormEps), $"rms_norm_eps {NormEps} must be positive");
        Require(RopeTheta > 0 && float.IsFinite(RopeTheta), $"rope_theta {RopeTheta} must be positive");
        Require(BosId >= 0 && BosId < VocabSize, $"bos_token_id {BosId} is outside the vocabulary of {VocabSize}");
        Require(EosIds.Count > 0, "eos_token_id is an empty list");
        foreach (var eos in EosIds)
            Require(eos >= 0 && eos < VocabSize, $"eos_token_id {eos} is outside the vocabulary of {VocabSize}");
        return this;
    }

    /// <summary>Throws when a config.json number is absurd (a damaged or hostile file), before anything
    /// is sized from it.</summary>
    internal LlamaConfig RequirePlausibleSizes(string source)
    {
        void Require(bool ok, string problem)
        {
            if (!ok) throw new ModelFormatException($"{source}: {problem}");
        }
        foreach (var (name, value) in new[] { ("hidden_size", Dim), ("intermediate_size", HiddenDim), ("num_hidden_layers", Layers), ("num_attention_heads", Heads),
                     ("vocab_size", VocabSize), ("max_position_embeddings", MaxSeqLen), ("head_dim", HeadDim) })
            Require(value <= MaxDimension, $"{name} {value} is absurdly large (at most {MaxDimension})");
        Require((long)VocabSize * Dim <= int.MaxValue && (long)HiddenDim * Dim <= int.MaxValue && (long)QueryDim * Dim <= int.MaxValue,
            $"a weight matrix (vocab {VocabSize}, hidden {Dim}, intermediate {HiddenDim}) has more than {int.MaxValue} elements");
        return this;
    }

    /// <summary>The model types whose checkpoints are this architecture.</summary>
    private static readonly string[] ModelTypes = ["llama", "mistral", "qwen2"];

    /// <summary>Reads a Hugging Face <c>config.json</c>; every setting that would change the model and
    /// that the engine does not implement is refused by name.</summary>
    public static LlamaConfig FromJsonFile(string path)
    {
        var text = InputFile.Reading(path, () => File.ReadAllText(path));
        JsonNode? root;
        try
        {
            JsonText.CheckStrings(System.Text.Encoding.UTF8.GetBytes(text));
            root = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({ErrorText.Json(e)})");
        }
        if (root is not JsonObject json) throw new ModelFormatException($"{path}: not a JSON object");
        ModelFormatException Error(string problem) => new($"{path}: {problem}");

        T Field<T>(string name, T? fallback, string kind) where T : struct
        {
            var value = json[name];
            if (value is null)
                return fallback ?? throw Error($"required field '{name}' is missing");
            try
            {
                return value.GetValue<T>();
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw Error($"field '{name}' is not {kind}");
            }
        }
        int Int(string name, int? fallback = null) => Field(name, fallback, "an integer");
        float Float(string name, float? fallback = null) => Field(name, fallback, "a number");
        bool Bool(string name, bool fallback) => Field<bool>(name, fallback, "true or false");
        string? Text(string name) => json[name] switch
        {
            null => null,
            JsonValue value when value.TryGetValue<string>(out var text) => text,
            _ => throw Error($"field '{name}' is not a string"),
        };

        if (Text("model_type") is { } modelType && !ModelTypes.Contains(modelType))
            throw Error($"model_type '{modelType}' is not supported (supported: {string.Join(", ", ModelTypes)})");
        if (Text("hidden_act") is { } activation && activation != "silu")
            throw Error($"hidden_act '{activation}' is not supported (Llama uses silu)");
        if (Bool("mlp_bias", false)) throw Error("mlp_bias true is not supported (Llama's feed-forward has no biases)");
        if (json["quantization_config"] is JsonObject quantization)
            throw Error($"quantization_config ({quantization["quant_method"]?.ToJsonString() ?? "unknown method"}) is not supported: weights must be f32, f16 or bf16");
        var isQwen2 = Text("model_type") == "qwen2";

        var heads = Int("num_attention_heads");
        static int? AsInt(JsonNode? node) =>
            node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<int>(out var result) ? result : null;
        var eosNode = json["eos_token_id"];
        var eos = eosNode switch
        {
            null => [2],
            JsonArray array => array.Select(AsInt).ToArray() is var ids && ids.All(id => id.HasValue) ? ids.Select(id => id!.Value).ToArray() : null,
            _ => AsInt(eosNode) is { } single ? [single] : null,
        } ?? throw Error("field 'eos_token_id' is not an integer or a list of integers");
        var maxPositions = Int("max_position_embeddings");
        // Qwen2 configs carry a sliding_window that only applies with use_sliding_window.
        var slidingWindow = isQwen2 && !Bool("use_sliding_window", false) ? null : json["sliding_window"] is null ? (int?)null : Int("sliding_window");
        var config = new LlamaConfig(
            Dim: Int("hidden_size"),
            HiddenDim: Int("intermediate_size"),
            Layers: Int("num_hidden_layers"),
            Heads: heads,
            KvHeads: Int("num_key_value_heads", heads),
            VocabSize: Int("vocab_size"),
            MaxSeqLen: maxPositions,
            NormEps: Float("rms_norm_eps"),
            RopeTheta: Float("rope_theta", 10000f),
            TiedEmbeddings: Bool("tie_word_embeddings", false),
            BosId: Int("bos_token_id", 1),
            EosIds: eos)
        {
            AttentionBias = isQwen2 || Bool("attention_bias", false),
            RopeScaling = ParseRopeScaling(json["rope_scaling"], path),
            SlidingWindow = slidingWindow,
        };
        return (json["head_dim"] is null ? config : config with { HeadDim = Int("head_dim") }).RequirePlausibleSizes(path).Validate(path);
    }

    private static RopeScaling? ParseRopeScaling(JsonNode? node, string path)
    {
        if (node is null) return null;
        if (node is not JsonObject scaling) throw new ModelFormatException($"{path}: rope_scaling is not an object");
        double Number(string name, double? fallback = null)
        {
            if (scaling[name] is null) return fallback ?? throw new ModelFormatException($"{path}: rope_scaling.{name} is missing");
            try
            {
                var value = scaling[name]!.GetValue<double>();
                return value > 0 && double.IsFinite(value) ? value : throw new ModelFormatException($"{path}: rope_scaling.{name} {value} must be positive");
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new ModelFormatException($"{path}: rope_scaling.{name} is not a number");
            }
        }
        var type = (scaling["rope_type"] ?? scaling["type"]) is JsonValue t && t.TryGetValue<string>(out var name) ? name : null;
        return type switch
        {
            "default" => null,
            "linear" => new RopeScaling(type, Number("factor")),
            "llama3" => new RopeScaling(type, Number("factor"), Number("low_freq_factor", 1), Number("high_freq_factor", 4), (int)Number("original_max_position_embeddings", 8192))
                is var llama3 && llama3.HighFreqFactor > llama3.LowFreqFactor ? llama3
                : throw new ModelFormatException($"{path}: rope_scaling.high_freq_factor must exceed low_freq_factor"),
            _ => throw new ModelFormatException($"{path}: rope_scaling type '{type ?? "(none)"}' is not supported (supported: linear, llama3)"),
        };
    }

    /// <summary>The <c>config.json</c> a Hugging Face Llama directory carries for this model.</summary>
    public string ToJson()
    {
        var json = new JsonObject
        {
            ["architectures"] = new JsonArray("LlamaForCausalLM"),
            ["model_type"] = "llama",
            ["hidden_act"] = "silu",
            ["hidden_size"] = Dim,
            ["intermediate_size"] = HiddenDim,
            ["num_hidden_layers"] = Layers,
            ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads,
            ["vocab_size"] = VocabSize,
            ["max_position_embeddings"] = MaxSeqLen,
            ["rms_norm_eps"] = NormEps,
            ["rope_theta"] = RopeTheta,
            ["tie_word_embeddings"] = TiedEmbeddings,
            ["bos_token_id"] = BosId,
            ["eos_token_id"] = EosIds.Count == 1 ? EosIds[0] : new JsonArray(EosIds.Select(id => (JsonNode)id).ToArray()),
            ["attention_bias"] = AttentionBias,
            ["rope_scaling"] = RopeScaling is { } scaling
                ? new JsonObject
                {
                    ["rope_type"] = scaling.Type, ["factor"] = scaling.Factor, ["low_freq_factor"] = scaling.LowFreqFactor,
                    ["high_freq_factor"] = scaling.HighFreqFactor, ["original_max_position_embeddings"] = scaling.OriginalMaxPositions,
                }
                : null,
        };
        if (_headDim is { } headDim) json["head_dim"] = headDim;
        if (SlidingWindow is { } window) json["sliding_window"] = window;
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
