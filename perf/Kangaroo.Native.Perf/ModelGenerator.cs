using System.Runtime.InteropServices;
using System.Text;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Perf;

/// <summary>
/// Writes a Hugging Face Llama directory with random weights of a realistic shape, for speed
/// measurements only (its output is noise): config.json, model.safetensors (streamed one tensor at a
/// time) and a tokenizer.model whose first pieces are stories260K's tok512 (so prompts encode) padded
/// with unreachable pieces to the model's vocabulary. Or, for measuring conversion, the same weights as
/// a llama2.c checkpoint (model.bin, f32) beside that tokenizer.model.
/// </summary>
public static class ModelGenerator
{
    public static readonly IReadOnlyDictionary<string, LlamaConfig> Shapes = new Dictionary<string, LlamaConfig>
    {
        ["tinyllama"] = new(Dim: 2048, HiddenDim: 5632, Layers: 22, Heads: 32, KvHeads: 4, VocabSize: 32000, MaxSeqLen: 2048,
            NormEps: 1e-5f, RopeTheta: 10000f, TiedEmbeddings: false, BosId: 1, EosIds: [2]),
        // llama2.c's stories110M: where the LM head is 22 % of the weights (a draft vocabulary's case).
        ["stories110m"] = new(Dim: 768, HiddenDim: 2048, Layers: 12, Heads: 12, KvHeads: 12, VocabSize: 32000, MaxSeqLen: 1024,
            NormEps: 1e-5f, RopeTheta: 10000f, TiedEmbeddings: false, BosId: 1, EosIds: [2]),
        // A small model of the same proportions, for quick checks of the generator and of GQA paths.
        ["tiny-gqa"] = new(Dim: 256, HiddenDim: 704, Layers: 4, Heads: 8, KvHeads: 2, VocabSize: 4096, MaxSeqLen: 512,
            NormEps: 1e-5f, RopeTheta: 10000f, TiedEmbeddings: false, BosId: 1, EosIds: [2]),
    };

    /// <summary>Writes the model into <paramref name="directory"/>; returns the weights file.</summary>
    public static string Write(string directory, LlamaConfig config, ElementType type, string baseTokenizer, bool llama2c = false, int seed = 1234)
    {
        if (type.IsQuantized())
            throw new ArgumentException($"make-model writes safetensors, which has no {type}; quantize at load with --weights instead", nameof(type));
        if (llama2c && type != ElementType.F32) throw new ArgumentException($"a llama2.c checkpoint holds f32, not {type}", nameof(type));
        Directory.CreateDirectory(directory);
        var expected = ModelCheckpoint.Names.Expected(config);
        // Norm gains are 1; matrices uniform with the variance of a 1/sqrt(fan-in) init.
        byte[] Tensor(int i) => Fill(checked((int)expected[i].Shape.Aggregate(1L, (a, b) => a * b)), type,
            expected[i].Shape.Length == 1 ? 0f : MathF.Sqrt(3f / expected[i].Shape[^1]), seed + i);
        File.WriteAllBytes(Path.Combine(directory, "tokenizer.model"), PaddedTokenizer(baseTokenizer, config.VocabSize));
        if (llama2c) return WriteLlama2c(Path.Combine(directory, "model.bin"), config, expected, Tensor);
        var specs = expected.Select(t => new SafeTensorSpec(t.Name, type, t.Shape)).ToList();
        var weights = Path.Combine(directory, "model.safetensors");
        SafeTensorsWriter.Write(weights, specs, (i, stream) => stream.Write(Tensor(i)),
            new Dictionary<string, string> { ["format"] = "pt", ["generator"] = "kangaroo-perf make-model (random weights)" });
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJson() + "\n", new UTF8Encoding(false));
        return weights;
    }

    /// <summary>run.c's legacy format: the header, then each kind of weight for every layer in turn (the
    /// rotary tables as zeros: the engine recomputes them).</summary>
    private static string WriteLlama2c(string path, LlamaConfig c, IReadOnlyList<(string Name, int[] Shape)> expected, Func<int, byte[]> tensor)
    {
        var index = expected.Select((t, i) => (t.Name, i)).ToDictionary(t => t.Name, t => t.i);
        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write);
        foreach (var field in new[] { c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.TiedEmbeddings ? c.VocabSize : -c.VocabSize, c.MaxSeqLen })
            stream.Write(BitConverter.GetBytes(field));
        void Put(string name) => stream.Write(tensor(index[name]));
        Put(ModelCheckpoint.Names.Embedding);
        foreach (var kind in new[] { ModelCheckpoint.Names.AttentionNorm, ModelCheckpoint.Names.Query, ModelCheckpoint.Names.Key, ModelCheckpoint.Names.Value,
                     ModelCheckpoint.Names.Output, ModelCheckpoint.Names.FeedForwardNorm, ModelCheckpoint.Names.Gate, ModelCheckpoint.Names.Down, ModelCheckpoint.Names.Up })
            for (var l = 0; l < c.Layers; l++) Put(ModelCheckpoint.Names.Layer(l, kind));
        Put(ModelCheckpoint.Names.FinalNorm);
        stream.Write(new byte[4L * c.MaxSeqLen * c.HeadDim]);
        if (!c.TiedEmbeddings) Put(ModelCheckpoint.Names.LmHead);
        return path;
    }

    /// <summary>count values: uniform in [-scale, scale], or all 1 when scale is 0.</summary>
    private static byte[] Fill(int count, ElementType type, float scale, int seed)
    {
        var bytes = new byte[type.ByteCount(count)];
        var state = (ulong)seed * 0x9E3779B97F4A7C15UL | 1;
        float Next()
        {
            if (scale == 0f) return 1f;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            return ((state >> 40) * (1f / (1 << 24)) * 2f - 1f) * scale;
        }
        switch (type)
        {
            case ElementType.F32:
                var floats = MemoryMarshal.Cast<byte, float>(bytes.AsSpan());
                for (var i = 0; i < count; i++) floats[i] = Next();
                break;
            case ElementType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(bytes.AsSpan());
                for (var i = 0; i < count; i++) halves[i] = (Half)Next();
                break;
            case ElementType.BF16:
                var bf16 = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (var i = 0; i < count; i++) bf16[i] = CheckpointConverter.ToBFloat16(Next());
                break;
            default:
                throw ElementTypes.Unsupported(type, "the model generator (quantize with --weights at load)");
        }
        return bytes;
    }

    private static byte[] PaddedTokenizer(string baseTokenizer, int vocab)
    {
        var model = TextTokenizer.Load(baseTokenizer).Model;
        if (model.Pieces.Count > vocab) throw new ArgumentException($"{baseTokenizer} has {model.Pieces.Count} pieces, more than the vocabulary of {vocab}");
        var pieces = model.Pieces.ToList();
        for (var i = pieces.Count; i < vocab; i++) pieces.Add(new SentencePiece($"<unused{i}>", -1e9f, PieceType.Unused));
        return new SentencePieceModel
        {
            Pieces = pieces, ModelType = model.ModelType, ByteFallback = model.ByteFallback, UnknownId = model.UnknownId,
            BosId = model.BosId, EosId = model.EosId, PadId = model.PadId, AddDummyPrefix = model.AddDummyPrefix,
            RemoveExtraWhitespaces = model.RemoveExtraWhitespaces, EscapeWhitespaces = model.EscapeWhitespaces,
        }.ToBytes();
    }
}
