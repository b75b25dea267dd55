using System.Text.Json;
using System.Text.Json.Nodes;

namespace Kangaroo.Native.Loader;

/// <summary>The shape and constants of a Llama-family decoder (Llama 2, TinyLlama, Vicuna, Mistral-style GQA).</summary>
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
    public int HeadDim => Dim / Heads;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Throws when the numbers cannot describe a working model; <paramref name="source"/> names the file.</summary>
    public LlamaConfig Validate(string source)
    {
        void Require(bool ok, string problem)
        {
            if (!ok) throw new ModelFormatException($"{source}: {problem}");
        }
        Require(Dim > 0 && HiddenDim > 0 && Layers > 0 && Heads > 0 && KvHeads > 0 && VocabSize > 0 && MaxSeqLen > 0,
            $"dimensions must be positive (dim {Dim}, hidden {HiddenDim}, layers {Layers}, heads {Heads}, kv heads {KvHeads}, vocab {VocabSize}, context {MaxSeqLen})");
        Require(Dim % Heads == 0, $"hidden size {Dim} is not a multiple of the {Heads} attention heads");
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

    /// <summary>Reads a Hugging Face <c>config.json</c>.</summary>
    public static LlamaConfig FromJsonFile(string path)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path));
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({e.Message})");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read ({e.Message})");
        }
        if (root is not JsonObject json) throw new ModelFormatException($"{path}: not a JSON object");

        int Int(string name, int? fallback = null)
        {
            var node = json[name];
            if (node is null)
                return fallback ?? throw new ModelFormatException($"{path}: required field '{name}' is missing");
            try
            {
                return node.GetValue<int>();
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new ModelFormatException($"{path}: field '{name}' is not an integer");
            }
        }
        float Float(string name, float? fallback = null)
        {
            var node = json[name];
            if (node is null)
                return fallback ?? throw new ModelFormatException($"{path}: required field '{name}' is missing");
            try
            {
                return node.GetValue<float>();
            }
            catch (Exception e) when (e is FormatException or InvalidOperationException)
            {
                throw new ModelFormatException($"{path}: field '{name}' is not a number");
            }
        }

        if (json["rope_scaling"] is JsonObject)
            throw new ModelFormatException($"{path}: rope_scaling is not supported");
        if (json["hidden_act"] is { } act)
        {
            if (act is not JsonValue actValue || !actValue.TryGetValue<string>(out var activation))
                throw new ModelFormatException($"{path}: field 'hidden_act' is not a string");
            if (activation != "silu")
                throw new ModelFormatException($"{path}: hidden_act '{activation}' is not supported (Llama uses silu)");
        }
        bool tied = false;
        if (json["tie_word_embeddings"] is { } tie && (tie is not JsonValue tieValue || !tieValue.TryGetValue(out tied)))
            throw new ModelFormatException($"{path}: field 'tie_word_embeddings' is not true or false");

        var heads = Int("num_attention_heads");
        static int? AsInt(JsonNode? node) =>
            node is JsonValue value && value.GetValueKind() == JsonValueKind.Number && value.TryGetValue<int>(out var result) ? result : null;
        var eosNode = json["eos_token_id"];
        var eos = eosNode switch
        {
            null => [2],
            JsonArray array => array.Select(AsInt).ToArray() is var ids && ids.All(id => id.HasValue) ? ids.Select(id => id!.Value).ToArray() : null,
            _ => AsInt(eosNode) is { } single ? [single] : null,
        } ?? throw new ModelFormatException($"{path}: field 'eos_token_id' is not an integer or a list of integers");
        return new LlamaConfig(
            Dim: Int("hidden_size"),
            HiddenDim: Int("intermediate_size"),
            Layers: Int("num_hidden_layers"),
            Heads: heads,
            KvHeads: Int("num_key_value_heads", heads),
            VocabSize: Int("vocab_size"),
            MaxSeqLen: Int("max_position_embeddings"),
            NormEps: Float("rms_norm_eps"),
            RopeTheta: Float("rope_theta", 10000f),
            TiedEmbeddings: tied,
            BosId: Int("bos_token_id", 1),
            EosIds: eos).Validate(path);
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
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
