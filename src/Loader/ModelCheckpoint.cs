using System.Buffers;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A model's configuration and weights under Hugging Face Llama tensor names
/// (<c>model.layers.N.self_attn.q_proj.weight</c>, ...), in the Hugging Face rotary convention
/// (each head's dimensions rotated in halves), whatever format they were read from.
/// </summary>
public abstract class ModelCheckpoint : IDisposable
{
    /// <summary>The model's hyperparameters, from its configuration file or header.</summary>
    public abstract LlamaConfig Config { get; }

    /// <summary>The file or directory the model came from.</summary>
    public abstract string Source { get; }

    /// <summary>The tokenizer file that belongs to the model, if one was found beside it.</summary>
    public abstract string? TokenizerPath { get; }

    /// <summary>Every file the model was read from, its tokenizer included (what must never be written to).</summary>
    public virtual IReadOnlyList<string> Files => TokenizerPath is null ? [Source] : [Source, TokenizerPath];

    /// <summary>Whether the checkpoint holds a tensor of that Hugging Face name.</summary>
    public abstract bool Contains(string name);

    /// <summary>Reads a tensor; throws naming the file when it is missing.</summary>
    protected abstract TensorData ReadTensor(string name);

    /// <summary>The file that holds (or would hold) a tensor, for error messages.</summary>
    protected abstract string FileOf(string name);

    /// <summary>The file the configuration was read from, for error messages: a shape that disagrees
    /// may be the configuration's fault as much as the tensor's.</summary>
    protected virtual string ConfigFile => Source;

    /// <summary>Where a tensor's bytes lie in a file, in its stored type and shape, for reading it a block of
    /// rows at a time (<see cref="ReadRows"/>); <paramref name="AdjacentPairs"/>: the file keeps q and k rows
    /// in adjacent-pair rotary order (<see cref="RotaryLayout"/>).</summary>
    protected sealed record TensorExtent(string File, long Offset, ElementType Type, int[] Shape, bool AdjacentPairs = false);

    /// <summary>The tensor's extent when its rows can be read from its file as they lie; null (the default)
    /// where they cannot, and <see cref="ReadRows"/> reads the whole tensor.</summary>
    protected virtual TensorExtent? ExtentOf(string name) => null;

    /// <summary>Most bytes <see cref="ReadRows"/> reads at once (one row, or one head of q or k, when that is more).</summary>
    public const int RowBlockBytes = 4 << 20;

    /// <summary>The element type <see cref="Read"/> gives a tensor, from the file's header where it can be,
    /// without checking its shape or values (<see cref="Read"/> and <see cref="ReadRows"/> do).</summary>
    public ElementType TypeOf(string name) => ExtentOf(name)?.Type ?? StoredTypeOf(name) ?? ReadTensor(name).Type;

    /// <summary>The type <see cref="ReadTensor"/> gives a tensor that has no extent, where the format knows it
    /// without reading the tensor; null (the default) where it must read it.</summary>
    protected virtual ElementType? StoredTypeOf(string name) => null;

    /// <summary>Reads a tensor and checks its shape against what the configuration implies and its
    /// values: a NaN or infinity anywhere, or an embedding, final norm or LM head of zeros, would make
    /// every generated token garbage.</summary>
    public TensorData Read(string name, params int[] expectedShape)
    {
        var tensor = ReadTensor(name);
        CheckShape(name, tensor.Shape, expectedShape);
        CheckValues(name, tensor.CountNonFinite(), tensor.IsAllZero);
        return tensor;
    }

    /// <summary>Where the bytes <see cref="Read"/> gives a tensor are the file's own, lying in a memory map: a
    /// lease (the caller's to dispose) that keeps them valid until it is disposed, also after the checkpoint is.
    /// Null (the default) where they are a copy (q and k permuted to halves, a type converted) or the format
    /// maps nothing.</summary>
    public virtual IDisposable? Lease(string name) => null;

    /// <summary>Hands a tensor's rows to <paramref name="rows"/> a block at a time, in order, as <see cref="Read"/>
    /// would give them (the engine's rotary order), and checks it as <see cref="Read"/> does, though the values'
    /// check fails only after the last block. Where the format gives the tensor's extent, each block is read from
    /// the file into one buffer of at most <see cref="RowBlockBytes"/> (whole heads of q and k), never through the
    /// memory map: reading a model this way holds one block, whatever the model's size.</summary>
    public void ReadRows(string name, int[] expectedShape, RowBlockAction rows)
    {
        var heads = Names.RotatedHeads(name, Config);
        var rowsPerUnit = heads > 0 ? Config.HeadDim : 1;
        if (ExtentOf(name) is not { } extent)
        {
            var tensor = Read(name, expectedShape);
            var (count, rowBytes) = Rows(tensor.Type, tensor.Shape);
            var perBlock = RowsPerBlock(count, rowBytes, rowsPerUnit);
            for (long first = 0; first < count; first += perBlock)
            {
                var n = (int)Math.Min(perBlock, count - first);
                rows(new TensorData(tensor.Type, RowShape(tensor.Shape, n), tensor.Bytes.Slice(checked((int)(first * rowBytes)), checked((int)(n * rowBytes)))), first);
            }
            return;
        }
        CheckShape(name, extent.Shape, expectedShape);
        var (total, bytesPerRow) = Rows(extent.Type, extent.Shape);
        var blockRows = RowsPerBlock(total, bytesPerRow, rowsPerUnit);
        var size = checked((int)(blockRows * bytesPerRow));
        var pairs = extent.AdjacentPairs && heads > 0;
        var buffer = ArrayPool<byte>.Shared.Rent(size);
        var permuted = pairs ? ArrayPool<byte>.Shared.Rent(size) : null;
        try
        {
            using var file = File.OpenHandle(extent.File);
            long nonFinite = 0;
            var allZero = true;
            for (long first = 0; first < total; first += blockRows)
            {
                var n = (int)Math.Min(blockRows, total - first);
                var bytes = buffer.AsSpan(0, checked((int)(n * bytesPerRow)));
                ReadExactly(file, bytes, extent.Offset + first * bytesPerRow, extent.File, name);
                if (pairs)
                {
                    RotaryLayout.ToHalves<byte>(bytes, permuted.AsSpan(0, bytes.Length), n / Config.HeadDim, Config.HeadDim);
                    bytes = permuted.AsSpan(0, bytes.Length);
                }
                var block = new TensorData(extent.Type, RowShape(extent.Shape, n), bytes);
                nonFinite += block.CountNonFinite();
                allZero &= block.IsAllZero;
                rows(block, first);
            }
            CheckValues(name, nonFinite, allZero);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            if (permuted is not null) ArrayPool<byte>.Shared.Return(permuted);
        }
    }

    /// <summary>Receives a block of a tensor's rows (shape [rows, ...], or a whole vector) and the index of its first row.</summary>
    public delegate void RowBlockAction(TensorData rows, long firstRow);

    /// <summary>A vector is one row; a matrix has rows of its last dimension.</summary>
    private static (long Rows, long RowBytes) Rows(ElementType type, int[] shape) =>
        shape.Length <= 1 ? (1, type.ByteCount(shape)) : (shape[0], type.ByteCount(shape[1..]));

    private static int[] RowShape(int[] shape, int rows) => shape.Length <= 1 ? shape : [rows, .. shape[1..]];

    /// <summary>Rows of a block: as many whole units (a row, or a head's rows) as fit in <see cref="RowBlockBytes"/>, at least one.</summary>
    private static long RowsPerBlock(long rows, long rowBytes, int rowsPerUnit)
    {
        var units = Math.Max(1, RowBlockBytes / Math.Max(1, rowBytes * rowsPerUnit));
        return Math.Min(Math.Max(rows, 1), units * rowsPerUnit);
    }

    private static void ReadExactly(Microsoft.Win32.SafeHandles.SafeFileHandle file, Span<byte> destination, long offset, string path, string name)
    {
        while (destination.Length > 0)
        {
            var read = RandomAccess.Read(file, destination, offset);
            if (read == 0) throw new ModelFormatException($"{path}: the file ends inside tensor '{name}' (truncated since it was opened?)");
            destination = destination[read..];
            offset += read;
        }
    }

    private void CheckShape(string name, int[] shape, int[] expectedShape)
    {
        if (!shape.SequenceEqual(expectedShape))
            throw new ModelFormatException(
                $"{FileOf(name)}: tensor '{name}' has shape {TensorData.FormatShape(shape)} but the configuration in {ConfigFile} implies {TensorData.FormatShape(expectedShape)}");
    }

    private void CheckValues(string name, long nonFinite, bool allZero)
    {
        if (nonFinite > 0)
            throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' has {nonFinite} non-finite values (NaN or infinity)");
        if (name is Names.Embedding or Names.FinalNorm or Names.LmHead && allZero)
            throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' is all zeros (every logit would be the same)");
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

    /// <summary>Closes the files; tensors read from them are invalid afterwards.</summary>
    public virtual void Dispose() => GC.SuppressFinalize(this);

    /// <summary>Hugging Face names of the weights of one transformer block.</summary>
    public static class Names
    {
        /// <summary>The token embedding [vocab, dim].</summary>
        public const string Embedding = "model.embed_tokens.weight";
        /// <summary>The final RMSNorm gain [dim].</summary>
        public const string FinalNorm = "model.norm.weight";
        /// <summary>The LM head [vocab, dim].</summary>
        public const string LmHead = "lm_head.weight";
        /// <summary>The full name of block <paramref name="layer"/>'s weight <paramref name="suffix"/> (one of the constants below).</summary>
        public static string Layer(int layer, string suffix) => $"model.layers.{layer}.{suffix}";
        /// <summary>The attention's RMSNorm gain [dim].</summary>
        public const string AttentionNorm = "input_layernorm.weight";
        /// <summary>The query projection [heads * headDim, dim].</summary>
        public const string Query = "self_attn.q_proj.weight";
        /// <summary>The key projection [kvHeads * headDim, dim].</summary>
        public const string Key = "self_attn.k_proj.weight";
        /// <summary>The value projection [kvHeads * headDim, dim].</summary>
        public const string Value = "self_attn.v_proj.weight";
        /// <summary>The attention output projection [dim, heads * headDim].</summary>
        public const string Output = "self_attn.o_proj.weight";
        /// <summary>The feed-forward's RMSNorm gain [dim].</summary>
        public const string FeedForwardNorm = "post_attention_layernorm.weight";
        /// <summary>The feed-forward gate projection [hiddenDim, dim].</summary>
        public const string Gate = "mlp.gate_proj.weight";
        /// <summary>The feed-forward up projection [hiddenDim, dim].</summary>
        public const string Up = "mlp.up_proj.weight";
        /// <summary>The feed-forward down projection [dim, hiddenDim].</summary>
        public const string Down = "mlp.down_proj.weight";
        /// <summary>The query bias [heads * headDim], where the model has attention biases.</summary>
        public const string QueryBias = "self_attn.q_proj.bias";
        /// <summary>The key bias [kvHeads * headDim], where the model has attention biases.</summary>
        public const string KeyBias = "self_attn.k_proj.bias";
        /// <summary>The value bias [kvHeads * headDim], where the model has attention biases.</summary>
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
