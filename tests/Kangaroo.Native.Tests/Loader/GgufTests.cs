using Kangaroo.Native.Templates;

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
        var specs = new[] { new GgufTensorSpec("a", ElementType.F32, [3, 5]), new GgufTensorSpec("b", ElementType.F16, [5]) };
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

    private string Convert(ElementType type)
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
        using var ours = GgufFile.Open(Convert(ElementType.F32));
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
        using var session = InferenceSession.Open(Convert(ElementType.F32), "cpu");
        var decoder = new AutoregressiveDecoder(session.Model);
        foreach (var golden in GoldenCase.All)
        {
            Assert.Equal(golden.PromptIds, session.EncodePrompt(golden.Prompt));
            Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()));
        }
    }

    /// <summary>Tensors and metadata of our conversion against a file llama.cpp's tools wrote (read with the
    /// tests' own parser): every tensor of <paramref name="compared"/> has llama.cpp's ggml type and bytes,
    /// every <c>llama.*</c> key llama.cpp wrote has its value, and so do the tokenizer keys both write, except
    /// the keys of <paramref name="except"/> (each test says why).</summary>
    private static void AssertSameAsLlamaCpps(string oursPath, LlamaCppFiles.Gguf theirs, IEnumerable<LlamaCppFiles.Tensor> compared, params string[] except)
    {
        using var ours = GgufFile.Open(oursPath);
        var count = 0;
        foreach (var tensor in compared)
        {
            var info = ours.Info(tensor.Name);
            Assert.Equal(tensor.Dims.Reverse().Select(d => (int)d), info.Shape);
            Assert.True(info.Type.Info().GgmlId == tensor.Type, $"{tensor.Name}: ours {info.Type}, llama.cpp's ggml type {tensor.Type}");
            Assert.True(ours.Read(tensor.Name).Bytes.SequenceEqual(tensor.Bytes), $"{tensor.Name}: bytes differ from llama.cpp's");
            count++;
        }
        Assert.True(count > 0, "no tensor compared");
        foreach (var (key, value) in theirs.Metadata.Where(kv => kv.Key.StartsWith("llama.", StringComparison.Ordinal) || kv.Key.StartsWith("tokenizer.ggml.", StringComparison.Ordinal)))
        {
            if (key.StartsWith("tokenizer.", StringComparison.Ordinal) && !ours.Metadata.ContainsKey(key)) continue; // pre, padding_token_id, add_eos_token: we write none of them
            if (except.Contains(key)) continue;
            Assert.True(ours.Metadata.ContainsKey(key), $"llama.cpp wrote {key}; we do not");
            Assert.True(SameValue(value, ours.Metadata[key]), $"{key}: ours differs from llama.cpp's");
        }
    }

    private static bool SameValue(object theirs, object ours) => (theirs, ours) switch
    {
        (object[] a, GgufArray b) => a.Length == b.Items.Length && a.Select((x, i) => SameValue(x, b.Items.GetValue(i)!)).All(same => same),
        _ => theirs.Equals(ours),
    };

    /// <summary>llama.cpp's Hugging Face converter made ../shared/models/gguf/TinyStories-656K-Q8_0.gguf from
    /// TinyStories-656K (GGUF-my-repo). Our converter refuses a tokenizer.json, so it converts that model's
    /// f16 GGUF (llama.cpp's conversion of the same model: the f16 values are the Hugging Face weights exactly)
    /// with q8_0: every tensor (Q8_0 matrices, permuted q/k included, F32 norms) is byte for byte llama.cpp's.</summary>
    [Fact]
    public void Q8_0ConversionIsByteForByteLlamaCpps()
    {
        var ours = _temp.File("tinystories656K-q8_0.gguf");
        using (var source = ModelCheckpoint.Open(GgufGoldenTests.ModelPath("TinyStories-656K-f16.gguf")))
            CheckpointConverter.ConvertToGguf(source, ours, ElementType.Q8_0);
        var theirs = LlamaCppFiles.ReadGguf(GgufGoldenTests.ModelPath("TinyStories-656K-Q8_0.gguf"));
        using (var file = GgufFile.Open(ours)) Assert.Equal(theirs.Tensors.Select(t => t.Name).Order(), file.Tensors.Keys.Order());
        Assert.Equal(15, theirs.Tensors.Count(t => t.Type == LlamaCppFiles.Q8_0));
        AssertSameAsLlamaCpps(ours, theirs, theirs.Tensors);
    }

    /// <summary>llama.cpp's quantizer made ../shared/models/gguf-kquants/TinyStories-656K-x2-*.gguf from
    /// TinyStories-656K widened 2x (its SOURCE.md: two copies side by side, matrices block-diagonal, embedding
    /// and norms repeated, 16 heads and 8 KV heads). That source is rebuilt here from the f16 file and
    /// converted with each type we write: every tensor llama.cpp's mix gave that type, and the 5 F32 norms, are
    /// byte for byte llama.cpp's (its mixes give some tensors other types: the embedding Q6_K, in Q4_K_M and
    /// Q5_K_M some v and down projections Q6_K).</summary>
    [Theory]
    [InlineData(ElementType.Q4_0, "Q4_0", 14)]
    [InlineData(ElementType.Q4_K, "Q4_K_M", 12)]
    [InlineData(ElementType.Q5_K, "Q5_K_M", 12)]
    [InlineData(ElementType.Q6_K, "Q6_K", 15)]
    public void QuantizedConversionIsByteForByteLlamaCppsQuantizer(ElementType type, string mix, int tensors)
    {
        var source = _temp.File("tinystories656K-x2-f16.gguf");
        WriteWidened(GgufGoldenTests.ModelPath("TinyStories-656K-f16.gguf"), source);
        var ours = _temp.File($"tinystories656K-x2-{type.Info().Name}.gguf");
        using (var checkpoint = ModelCheckpoint.Open(source)) CheckpointConverter.ConvertToGguf(checkpoint, ours, type);
        var theirs = LlamaCppFiles.ReadGguf(SharedData.Path("models", "gguf-kquants", $"TinyStories-656K-x2-{mix}.gguf"));
        var ggmlType = type.Info().GgmlId;
        var compared = theirs.Tensors.Where(t => t.Type == ggmlType || t.Type == LlamaCppFiles.F32).ToList();
        Assert.Equal((tensors, 5), (compared.Count(t => t.Type == ggmlType), compared.Count(t => t.Type == LlamaCppFiles.F32)));
        AssertSameAsLlamaCpps(ours, theirs, compared);
    }

    /// <summary>The 2x-wide model of gguf-kquants/SOURCE.md as an f16 GGUF: each vector and each embedding row
    /// repeated, each matrix [[W, 0], [0, W]], twice the heads of the same size.</summary>
    private static void WriteWidened(string f16Path, string output)
    {
        using var f16 = GgufFile.Open(f16Path);
        var wide = new Dictionary<string, uint>
        {
            ["llama.embedding_length"] = 2u * (uint)f16.Integer("llama.embedding_length")!,
            ["llama.feed_forward_length"] = 2u * (uint)f16.Integer("llama.feed_forward_length")!,
            ["llama.attention.head_count"] = 2u * (uint)f16.Integer("llama.attention.head_count")!,
            ["llama.attention.head_count_kv"] = 2u * (uint)f16.Integer("llama.attention.head_count_kv")!,
        };
        var metadata = f16.Metadata.Select(kv => wide.TryGetValue(kv.Key, out var v) ? new KeyValuePair<string, object>(kv.Key, v) : kv).ToList();
        var specs = new List<GgufTensorSpec>();
        var data = new List<byte[]>();
        foreach (var (name, info) in f16.Tensors)
        {
            var bytes = f16.Read(name).Bytes;
            var element = info.Type == ElementType.F32 ? 4 : 2;
            if (info.Shape.Length == 1)
            {
                specs.Add(new GgufTensorSpec(name, info.Type, [2 * info.Shape[0]]));
                data.Add([.. bytes, .. bytes]);
                continue;
            }
            var (rows, row) = (info.Shape[0], info.Shape[1] * element);
            var embedding = name == "token_embd.weight";
            specs.Add(new GgufTensorSpec(name, info.Type, embedding ? [rows, 2 * info.Shape[1]] : [2 * rows, 2 * info.Shape[1]]));
            var result = new byte[(embedding ? 2 : 4) * bytes.Length];
            for (var r = 0; r < rows; r++)
            {
                bytes.Slice(r * row, row).CopyTo(result.AsSpan(r * 2 * row));
                bytes.Slice(r * row, row).CopyTo(result.AsSpan(((embedding ? 0 : rows) + r) * 2 * row + row));
            }
            data.Add(result);
        }
        GgufWriter.Write(output, metadata, specs, (i, stream) => stream.Write(data[i]));
    }

    /// <summary>An early llama.cpp Q8_0 conversion of stories260K (../shared/models/gguf/stories260K-q8_0-v2.gguf):
    /// our q8_0 conversion of stories260K.bin writes its matrices byte for byte as it did. Not compared:
    /// ffn_down, whose 172-value rows are not whole blocks (that file quantized it as one run of blocks across
    /// rows; we keep it F32, as <c>--weights</c> does), and output.weight (tied; we leave it out).</summary>
    [Fact]
    public void Stories260KQ8_0ConversionMatchesEarlyLlamaCpps()
    {
        var theirs = LlamaCppFiles.ReadGguf(GgufGoldenTests.ModelPath("stories260K-q8_0-v2.gguf"));
        var compared = theirs.Tensors.Where(t => t.Name != "output.weight" && !t.Name.EndsWith("ffn_down.weight", StringComparison.Ordinal)).ToList();
        Assert.Equal((31, 11), (compared.Count(t => t.Type == LlamaCppFiles.Q8_0), compared.Count(t => t.Type == LlamaCppFiles.F32)));
        // tensor_data_layout: an early key ("Meta AI original pth") that llama.cpp no longer writes; eos_token_id:
        // we write BOS (1), where llama2.c's run.c stops, and llama.cpp wrote 2 (see the class's F32 test too).
        AssertSameAsLlamaCpps(Convert(ElementType.Q8_0), theirs, compared, except: ["llama.tensor_data_layout", "tokenizer.ggml.eos_token_id"]);
    }

    /// <summary>A quantized conversion generates what the original quantized at load (<c>--weights</c>)
    /// generates, and keeps ffn_down (rows of 172 values, not whole blocks) F32 as <c>--weights</c> does.
    /// The quantized bytes themselves are compared with llama.cpp's files above and in
    /// <see cref="LlamaCppQuantizationTests"/>.</summary>
    [Theory]
    [InlineData(ElementType.Q8_0)]
    [InlineData(ElementType.Q4_0)]
    public void QuantizedConversionGeneratesWhatQuantizingAtLoadGenerates(ElementType type)
    {
        using var converted = ModelCheckpoint.Open(Convert(type));
        using var original = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        foreach (var (name, shape) in ModelCheckpoint.Names.Expected(original.Config))
        {
            var expectedType = shape.Length == 1 || name.EndsWith(ModelCheckpoint.Names.Down, StringComparison.Ordinal) ? ElementType.F32 : type;
            Assert.Equal(expectedType, converted.Read(name, shape).Type);
        }
        using var fromFile = InferenceSession.Open(converted.Source, "cpu");
        using var atLoad = InferenceSession.Open(SharedData.EmbeddedModel, "cpu", weights: type);
        foreach (var golden in GoldenCase.All)
            Assert.Equal(new AutoregressiveDecoder(atLoad.Model).Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()),
                new AutoregressiveDecoder(fromFile.Model).Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()));
    }

    /// <summary>A GGUF file that holds a chat template and the tokens it names (BOS "&lt;s&gt;", EOS "&lt;/s&gt;") and no model.</summary>
    internal static void WriteChatTemplateOnly(string path, string chatTemplate) =>
        GgufWriter.Write(path,
        [
            new("tokenizer.ggml.tokens", new GgufArray(GgufValueType.String, new[] { "<unk>", "<s>", "</s>" })),
            new("tokenizer.ggml.bos_token_id", 1u), new("tokenizer.ggml.eos_token_id", 2u),
            new("tokenizer.chat_template", chatTemplate),
        ], [], (_, _) => { });

    [Fact]
    public void ChatTemplateIsReadFromTheFile()
    {
        var path = _temp.File("chat.gguf");
        WriteChatTemplateOnly(path, "{{ bos_token }}{% for m in messages %}[{{ m['content'] }}]{% endfor %}{{ eos_token }}");
        var template = ChatTemplate.Load(path);
        Assert.Equal(("<s>", "</s>"), (template.BosToken, template.EosToken));
        Assert.Contains("metadata 'general.architecture' is missing", Assert.Throws<ModelFormatException>(() => ModelCheckpoint.Open(path)).Message);
    }
}
