using System.Runtime.InteropServices;
using System.Text;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Perf;

/// <summary>
/// Writes a Hugging Face Llama directory with random weights of a realistic shape, for speed
/// measurements only (its output is noise): config.json, model.safetensors (streamed one tensor at a
/// time) and a tokenizer.model whose first pieces are stories260K's tok512 (so prompts encode) padded
/// with unreachable pieces to the model's vocabulary.
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

    public static void Write(string directory, LlamaConfig config, ElementType type, string baseTokenizer, int seed = 1234)
    {
        if (type.IsQuantized())
            throw new ArgumentException($"make-model writes safetensors, which has no {type}; quantize at load with --weights instead", nameof(type));
        Directory.CreateDirectory(directory);
        var expected = ModelCheckpoint.Names.Expected(config);
        var specs = expected.Select(t => new SafeTensorSpec(t.Name, type, t.Shape)).ToList();
        SafeTensorsWriter.Write(Path.Combine(directory, "model.safetensors"), specs, i =>
        {
            var (name, shape) = expected[i];
            var count = shape.Aggregate(1L, (a, b) => a * b);
            // Norm gains are 1; matrices uniform with the variance of a 1/sqrt(fan-in) init.
            var scale = shape.Length == 1 ? 0f : MathF.Sqrt(3f / shape[^1]);
            return Fill(checked((int)count), type, scale, seed + i);
        }, new Dictionary<string, string> { ["format"] = "pt", ["generator"] = "kangaroo-perf make-model (random weights)" });
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJson() + "\n", new UTF8Encoding(false));
        File.WriteAllBytes(Path.Combine(directory, "tokenizer.model"), PaddedTokenizer(baseTokenizer, config.VocabSize));
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
