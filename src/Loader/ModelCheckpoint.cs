using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A model's configuration and weights under Hugging Face Llama tensor names
/// (<c>model.layers.N.self_attn.q_proj.weight</c>, ...), in the Hugging Face rotary convention
/// (each head's dimensions rotated in halves), whatever format they were read from.
/// </summary>
public abstract class ModelCheckpoint : IDisposable
{
    public abstract LlamaConfig Config { get; }

    /// <summary>The file or directory the model came from.</summary>
    public abstract string Source { get; }

    /// <summary>The tokenizer file that belongs to the model, if one was found beside it.</summary>
    public abstract string? TokenizerPath { get; }

    /// <summary>Every file the model was read from, its tokenizer included (what must never be written to).</summary>
    public virtual IReadOnlyList<string> Files => TokenizerPath is null ? [Source] : [Source, TokenizerPath];

    public abstract bool Contains(string name);

    /// <summary>Reads a tensor; throws naming the file when it is missing.</summary>
    protected abstract TensorData ReadTensor(string name);

    /// <summary>The file that holds (or would hold) a tensor, for error messages.</summary>
    protected abstract string FileOf(string name);

    /// <summary>The file the configuration was read from, for error messages: a shape that disagrees
    /// may be the configuration's fault as much as the tensor's.</summary>
    protected virtual string ConfigFile => Source;

    /// <summary>A tensor's stored element type, without reading or checking its values.</summary>
    public ElementType TypeOf(string name) => ReadTensor(name).Type;

    /// <summary>Reads a tensor and checks its shape against what the configuration implies and its
    /// values: a NaN or infinity anywhere, or an embedding, final norm or LM head of zeros, would make
    /// every generated token garbage.</summary>
    public TensorData Read(string name, params int[] expectedShape)
    {
        var tensor = ReadTensor(name);
        if (!tensor.Shape.SequenceEqual(expectedShape))
            throw new ModelFormatException(
                $"{FileOf(name)}: tensor '{name}' has shape {TensorData.FormatShape(tensor.Shape)} but the configuration in {ConfigFile} implies {TensorData.FormatShape(expectedShape)}");
        if (tensor.CountNonFinite() is var nonFinite and > 0)
            throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' has {nonFinite} non-finite values (NaN or infinity)");
        if (name is Names.Embedding or Names.FinalNorm or Names.LmHead && tensor.IsAllZero)
            throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' is all zeros (every logit would be the same)");
        return tensor;
    }

    /// <summary>Opens a Hugging Face model directory (config.json + safetensors), a GGUF file (told by
    /// its magic, whatever its name) or a llama2.c checkpoint (.bin).</summary>
    public static ModelCheckpoint Open(string path)
    {
        if (Directory.Exists(path)) return HfModelDirectory.Open(path);
        if (File.Exists(path))
        {
            if (GgufFile.HasMagic(path)) return GgufCheckpoint.Open(path);
            if (Path.GetFileName(path) is "config.json" || path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                return HfModelDirectory.Open(Path.GetDirectoryName(Path.GetFullPath(path))!);
            return Llama2cCheckpoint.Open(path);
        }
        throw new ModelFormatException($"{path}: no such model file or directory");
    }

    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>Hugging Face names of the weights of one transformer block.</summary>
    public static class Names
    {
        public const string Embedding = "model.embed_tokens.weight";
        public const string FinalNorm = "model.norm.weight";
        public const string LmHead = "lm_head.weight";
        public static string Layer(int layer, string suffix) => $"model.layers.{layer}.{suffix}";
        public const string AttentionNorm = "input_layernorm.weight";
        public const string Query = "self_attn.q_proj.weight";
        public const string Key = "self_attn.k_proj.weight";
        public const string Value = "self_attn.v_proj.weight";
        public const string Output = "self_attn.o_proj.weight";
        public const string FeedForwardNorm = "post_attention_layernorm.weight";
        public const string Gate = "mlp.gate_proj.weight";
        public const string Up = "mlp.up_proj.weight";
        public const string Down = "mlp.down_proj.weight";
        public const string QueryBias = "self_attn.q_proj.bias";
        public const string KeyBias = "self_attn.k_proj.bias";
        public const string ValueBias = "self_attn.v_proj.bias";

        /// <summary>How many heads of rows a weight has that RoPE rotates (whose order
        /// <see cref="RotaryLayout"/> changes): the query's heads, the key's key/value heads, else 0.</summary>
        public static int RotatedHeads(string name, LlamaConfig config) =>
            name.EndsWith(Query, StringComparison.Ordinal) ? config.Heads
            : name.EndsWith(Key, StringComparison.Ordinal) ? config.KvHeads
            : 0;

        /// <summary>Every weight a model with this configuration has, with the shape the configuration
        /// implies, in the order llama2.c stores them (no lm_head.weight when embeddings are tied; q, k
        /// and v biases after the projections when the model has them).</summary>
        public static IReadOnlyList<(string Name, int[] Shape)> Expected(LlamaConfig config)
        {
            var (dim, hidden, qDim, kvDim) = (config.Dim, config.HiddenDim, config.QueryDim, config.KvDim);
            var result = new List<(string, int[])> { (Embedding, [config.VocabSize, dim]) };
            for (var l = 0; l < config.Layers; l++)
            {
                result.Add((Layer(l, AttentionNorm), [dim]));
                result.Add((Layer(l, Query), [qDim, dim]));
                result.Add((Layer(l, Key), [kvDim, dim]));
                result.Add((Layer(l, Value), [kvDim, dim]));
                if (config.AttentionBias)
                {
                    result.Add((Layer(l, QueryBias), [qDim]));
                    result.Add((Layer(l, KeyBias), [kvDim]));
                    result.Add((Layer(l, ValueBias), [kvDim]));
                }
                result.Add((Layer(l, Output), [dim, qDim]));
                result.Add((Layer(l, FeedForwardNorm), [dim]));
                result.Add((Layer(l, Gate), [hidden, dim]));
                result.Add((Layer(l, Down), [dim, hidden]));
                result.Add((Layer(l, Up), [hidden, dim]));
            }
            result.Add((FinalNorm, [dim]));
            if (!config.TiedEmbeddings) result.Add((LmHead, [config.VocabSize, dim]));
            return result;
        }
    }
}
