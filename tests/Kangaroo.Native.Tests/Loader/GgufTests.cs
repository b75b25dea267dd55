using Kangaroo.Native.Engine;
using Kangaroo.Native.Templates;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Tests.Engine;

namespace Kangaroo.Native.Tests.Loader;

/// <summary>The GGUF reader and writer: every metadata value type in every version, and models
/// converted by <c>kangaroo convert --out FILE.gguf</c> checked against llama.cpp's own conversion of
/// the same checkpoint and against the original's greedy output. (scripts/check-gguf.mjs checks the
/// converted files with Hugging Face's independent parser, @huggingface/gguf.)</summary>
public sealed class GgufTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>One value of each of the 13 types, arrays of each, and arrays nested two deep.</summary>
    private static readonly KeyValuePair<string, object>[] EveryType =
    [
        new("u8", (byte)200), new("i8", (sbyte)-100), new("u16", (ushort)60000), new("i16", (short)-30000),
        new("u32", 4000000000u), new("i32", -2000000000), new("f32", 1.5f), new("bool", true), new("string", "Zoë \u2603"),
        new("u64", ulong.MaxValue), new("i64", long.MinValue), new("f64", Math.PI),
        new("u8s", new GgufArray(GgufValueType.UInt8, new byte[] { 1, 2, 255 })),
        new("i32s", new GgufArray(GgufValueType.Int32, new[] { -1, 0, 1 })),
        new("f64s", new GgufArray(GgufValueType.Float64, new[] { 0.25, -1e300 })),
        new("bools", new GgufArray(GgufValueType.Bool, new[] { false, true })),
        new("strings", new GgufArray(GgufValueType.String, new[] { "", "a", "\u2581b" })),
        new("empty", new GgufArray(GgufValueType.UInt64, Array.Empty<ulong>())),
        new("nested", new GgufArray(GgufValueType.Array, new[]
        {
            new GgufArray(GgufValueType.Int16, new short[] { 1, -2 }),
            new GgufArray(GgufValueType.Array, new[] { new GgufArray(GgufValueType.String, new[] { "deep" }) }),
        })),
        new("general.alignment", 64u),
    ];

    [Theory]
    [InlineData(1u)]
    [InlineData(2u)]
    [InlineData(3u)]
    public void EveryValueTypeAndTensorRoundTrips(uint version)
    {
        var path = _temp.File($"v{version}.gguf");
        var values = Enumerable.Range(0, 3 * 5).Select(i => (float)i).ToArray();
        var specs = new[] { new GgufTensorSpec("a", DType.F32, [3, 5]), new GgufTensorSpec("b", DType.F16, [5]) };
        var bytes = new[] { System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), new byte[10] };
        GgufWriter.Write(path, EveryType, specs, (i, stream) => stream.Write(bytes[i]), version);

        using var file = GgufFile.Open(path);
        Assert.Equal(version, file.Version);
        Assert.Equal(EveryType.Select(kv => kv.Key), file.Metadata.Keys);
        foreach (var (key, value) in EveryType) AssertSameValue(value, file.Metadata[key]);
        Assert.Equal(64, file.Alignment);
        Assert.Equal(0, file.DataOffset % 64);
        Assert.Equal([3, 5], file.Info("a").Shape);
        Assert.Equal(64, file.Info("b").Offset); // after a's 60 bytes, at the next multiple of 64
        Assert.Equal(values, file.Read("a").ToFloats());
        Assert.Equal(-2000000000L, file.Integer("i32"));
        Assert.Equal(1.5, file.Number("f32"));
        Assert.Equal([-1, 0, 1], file.Integers("i32s")!);
        Assert.Contains("metadata 'string' is a string, not an integer", Assert.Throws<ModelFormatException>(() => file.Integer("string")).Message);
    }

    private static void AssertSameValue(object expected, object actual)
    {
        if (expected is GgufArray array)
        {
            var read = Assert.IsType<GgufArray>(actual);
            Assert.Equal(array.ElementType, read.ElementType);
            Assert.Equal(array.Items.GetType(), read.Items.GetType());
            Assert.Equal(array.Items.Length, read.Items.Length);
            for (var i = 0; i < array.Items.Length; i++) AssertSameValue(array.Items.GetValue(i)!, read.Items.GetValue(i)!);
        }
        else
        {
            Assert.Equal(expected, actual);
        }
    }

    private string Convert(DType type)
    {
        var path = _temp.File($"stories260K-{type}.gguf");
        using var source = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        CheckpointConverter.ConvertToGguf(source, path, type);
        return path;
    }

    /// <summary>llama.cpp converted the same stories260K.bin (../shared/models/gguf/stories260K-f32.gguf):
    /// every tensor we write is byte for byte what it wrote, so names, shapes, order within a tensor and
    /// the q/k permutation to adjacent pairs all agree with llama.cpp. (llama.cpp also stored the tied
    /// LM head as output.weight; we leave it out, which llama.cpp reads as tied.)</summary>
    [Fact]
    public void F32ConversionIsByteForByteLlamaCpps()
    {
        using var ours = GgufFile.Open(Convert(DType.F32));
        using var theirs = GgufFile.Open(GgufGoldenTests.ModelPath("stories260K-f32.gguf"));
        Assert.Equal(theirs.Tensors.Keys.Where(n => n != "output.weight").Order(), ours.Tensors.Keys.Order());
        foreach (var name in ours.Tensors.Keys)
            Assert.True(ours.Read(name).Bytes.SequenceEqual(theirs.Read(name).Bytes), name);
        foreach (var key in theirs.Metadata.Keys.Where(k => k.StartsWith("llama.", StringComparison.Ordinal) && k is not "llama.context_length" and not "llama.tensor_data_layout"))
            AssertSameValue(theirs.Metadata[key], ours.Metadata[key]);
        Assert.Equal(theirs.Strings("tokenizer.ggml.tokens"), ours.Strings("tokenizer.ggml.tokens"));
        Assert.Equal(theirs.Floats("tokenizer.ggml.scores"), ours.Floats("tokenizer.ggml.scores"));
        Assert.Equal(theirs.Integers("tokenizer.ggml.token_type"), ours.Integers("tokenizer.ggml.token_type"));
    }

    /// <summary>stories260K converted to GGUF f32 and loaded back generates llama2.c's greedy ids, stop
    /// included (the stop token, BOS for a llama2.c checkpoint, is the file's eos_token_id), and its
    /// tokenizer encodes the prompts as run.c did.</summary>
    [Fact]
    public void F32RoundTripGeneratesTheOriginalsIds()
    {
        using var session = InferenceSession.Open(Convert(DType.F32), "cpu");
        var decoder = new AutoregressiveDecoder(session.Model);
        foreach (var golden in GoldenCase.All)
        {
            Assert.Equal(golden.PromptIds, session.EncodePrompt(golden.Prompt));
            Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()));
        }
    }

    /// <summary>Quantized output holds llama.cpp's reference quantization of each (halves-order) matrix,
    /// rows permuted whole: read back and permuted to halves again, it is exactly the quantized original,
    /// and it generates what the original quantized at load (<c>--weights</c>) generates. ffn_down's rows
    /// (172 values) are not whole blocks, so it stays F32, as <c>--weights</c> leaves it.</summary>
    [Theory]
    [InlineData(DType.Q8_0)]
    [InlineData(DType.Q4_0)]
    public void QuantizedConversionLoadsBackAsTheQuantizedOriginal(DType type)
    {
        using var converted = ModelCheckpoint.Open(Convert(type));
        using var original = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        var c = original.Config;
        foreach (var (name, shape) in ModelCheckpoint.Names.Expected(c))
        {
            var read = converted.Read(name, shape);
            var expectedType = shape.Length == 1 || name.EndsWith(ModelCheckpoint.Names.Down, StringComparison.Ordinal) ? DType.F32 : type;
            Assert.Equal(expectedType, read.Type);
            Assert.True(read.Bytes.SequenceEqual(CheckpointConverter.Encode(original.Read(name, shape), expectedType)), name);
        }
        using var fromFile = InferenceSession.Open(converted.Source, "cpu");
        using var atLoad = InferenceSession.Open(SharedData.EmbeddedModel, "cpu", weights: type);
        foreach (var golden in GoldenCase.All)
            Assert.Equal(new AutoregressiveDecoder(atLoad.Model).Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()),
                new AutoregressiveDecoder(fromFile.Model).Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()));
    }

    [Fact]
    public void ChatTemplateIsReadFromTheFile()
    {
        var path = _temp.File("chat.gguf");
        GgufWriter.Write(path,
        [
            new("tokenizer.ggml.tokens", new GgufArray(GgufValueType.String, new[] { "<unk>", "<s>", "</s>" })),
            new("tokenizer.ggml.bos_token_id", 1u), new("tokenizer.ggml.eos_token_id", 2u),
            new("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}{{ eos_token }}"),
        ], [], (_, _) => { });
        var template = ChatTemplate.Load(path);
        Assert.Equal(("<s>", "</s>"), (template.BosToken, template.EosToken));
        Assert.Contains("metadata 'general.architecture' is missing", Assert.Throws<ModelFormatException>(() => ModelCheckpoint.Open(path)).Message);
    }
}
