using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json.Nodes;

namespace Kangaroo.Native.Tests.Loader;

public sealed class LoaderErrorTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static void AssertError(Action action, string file, params string[] problems)
    {
        var e = Assert.Throws<ModelFormatException>(action);
        Assert.Contains(file, e.Message);
        foreach (var problem in problems) Assert.Contains(problem, e.Message);
    }

    private static void AssertOpenFails(string path, params string[] problems) =>
        AssertError(() => SafeTensorsFile.Open(path).Dispose(), Path.GetFileName(path), problems);

    /// <summary>Writes a safetensors file from a raw header string and a data section.</summary>
    private string WriteRaw(string name, string header, int dataBytes, long? headerLength = null)
    {
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BitConverter.GetBytes(headerLength ?? json.Length).CopyTo(bytes, 0);
        json.CopyTo(bytes, 8);
        var path = _temp.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static byte[] Floats(params float[] values) => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();

    // ---- safetensors ----

    [Fact]
    public void SafeTensorsRoundTripWithMetadataAndAllDtypes()
    {
        var path = _temp.File("round.safetensors");
        var f32 = Floats(1.5f, -2.25f, 3e-8f, float.MaxValue, 0f, -0f);
        var f16 = MemoryMarshal.AsBytes(new[] { (Half)1.5f, (Half)(-65504f), Half.Epsilon, (Half)0.1f }.AsSpan()).ToArray();
        var bf16 = MemoryMarshal.AsBytes(new ushort[] { 0x3FC0, 0xC010, 0x0001 }.AsSpan()).ToArray();
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };
        SafeTensorsWriter.Write(path,
        [
            new("a.f32", ElementType.F32, [2, 3], f32),
            new("b.f16", ElementType.F16, [4], f16),
            new("c.bf16", ElementType.BF16, [3, 1], bf16),
            new("d.empty", ElementType.F32, [0, 5], []),
        ], metadata);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp"));
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(metadata, file.Metadata);
        Assert.Equal(["a.f32", "b.f16", "c.bf16", "d.empty"], file.Tensors.Keys.Order());
        var a = file.Read("a.f32");
        Assert.Equal(ElementType.F32, a.Type);
        Assert.Equal([2, 3], a.Shape);
        Assert.Equal(f32, a.Bytes.ToArray());
        Assert.Equal([1.5f, -2.25f, 3e-8f, float.MaxValue, 0f, -0f], a.ToFloats());
        var b = file.Read("b.f16");
        Assert.Equal(ElementType.F16, b.Type);
        Assert.Equal([4], b.Shape);
        Assert.Equal(f16, b.Bytes.ToArray());
        Assert.Equal([1.5f, -65504f, (float)Half.Epsilon, (float)(Half)0.1f], b.ToFloats());
        var c = file.Read("c.bf16");
        Assert.Equal(ElementType.BF16, c.Type);
        Assert.Equal([3, 1], c.Shape);
        Assert.Equal([1.5f, -2.25f, BitConverter.UInt32BitsToSingle(0x00010000)], c.ToFloats());
        Assert.Equal(0, file.Read("d.empty").ElementCount);
        // Data starts 8-byte aligned.
        Assert.Equal(0, BitConverter.ToInt64(File.ReadAllBytes(path), 0) % 8);
    }

    [Fact]
    public void SafeTensorsWriterRejectsBadInput()
    {
        var path = _temp.File("bad.safetensors");
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [new("x", ElementType.F32, [3], new byte[8])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [new("x", ElementType.F32, [1], new byte[4]), new("x", ElementType.F32, [1], new byte[4])]));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(path)!, "*.tmp"));
    }

    [Fact]
    public void TruncatedSafeTensors()
    {
        var path = _temp.File("whole.safetensors");
        SafeTensorsWriter.Write(path, [new("w", ElementType.F32, [4, 4], new byte[64])]);
        var bytes = File.ReadAllBytes(path);
        var cut = _temp.File("cut.safetensors");
        File.WriteAllBytes(cut, bytes[..^10]);
        AssertOpenFails(cut, "tensor 'w'", "out of range", "truncated");
    }

    [Fact]
    public void HeaderLengthPastTheEnd() =>
        AssertOpenFails(WriteRaw("long.safetensors", "{}", 0, headerLength: 1000), "header length 1000", "past the end");

    [Theory]
    [InlineData(0)]
    [InlineData(7)]
    public void ShorterThanEightBytes(int length)
    {
        var path = _temp.File($"short{length}.safetensors");
        File.WriteAllBytes(path, new byte[length]);
        AssertOpenFails(path, $"file is {length} bytes", "8-byte header");
    }

    [Fact]
    public void ImplausibleHeaderLength() =>
        AssertOpenFails(WriteRaw("negative.safetensors", "{}", 0, headerLength: -5), "header length -5", "not a plausible size");

    [Theory]
    [InlineData("{\"w\": {\"dtype\": \"F32\"", "not valid JSON")]
    [InlineData("[1, 2]", "not a JSON object")]
    [InlineData("{\"w\": 5}", "tensor 'w'", "not an object")]
    [InlineData("{\"w\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", "tensor 'w'", "missing dtype")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", "tensor 'w'", "missing shape")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", "tensor 'w'", "not a non-negative integer")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", "tensor 'w'", "data_offsets must be [begin, end]")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [\"0\", \"4\"]}}", "tensor 'w'", "not integers")]
    [InlineData("{\"__metadata__\": {\"a\": 1}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", "__metadata__ value 'a'")]
    [InlineData("{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, \"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", "tensor 'w'", "more than once")]
    public void MalformedHeader(string header, params string[] problems) =>
        AssertOpenFails(WriteRaw("malformed.safetensors", header, 16), problems);

    [Fact]
    public void InvalidUtf8Header()
    {
        var path = _temp.File("utf8.safetensors");
        var header = new byte[] { (byte)'{', (byte)'"', 0xFF, 0xFE, (byte)'"', (byte)':', (byte)'1', (byte)'}' };
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header]);
        AssertOpenFails(path, "not valid JSON");
    }

    [Theory]
    [InlineData("I8")]
    [InlineData("F64")]
    [InlineData("f32")]
    public void UnknownDtype(string dtype) =>
        AssertOpenFails(WriteRaw("dtype.safetensors", $"{{\"w\": {{\"dtype\": \"{dtype}\", \"shape\": [2], \"data_offsets\": [0, 8]}}}}", 8),
            "tensor 'w'", $"unsupported dtype '{dtype}'");

    [Fact]
    public void OverlappingOffsets() =>
        AssertOpenFails(WriteRaw("overlap.safetensors",
                "{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}, \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]}}", 16),
            "'a' and 'b' overlap");

    [Theory]
    [InlineData(0, 20, "[0, 20] are out of range")]
    [InlineData(-4, 0, "[-4, 0] are out of range")]
    [InlineData(8, 4, "[8, 4] are out of range")]
    public void OutOfRangeOffsets(long begin, long end, string problem) =>
        AssertOpenFails(WriteRaw("range.safetensors", $"{{\"w\": {{\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [{begin}, {end}]}}}}", 16),
            "tensor 'w'", problem);

    [Fact]
    public void SizeShapeMismatch() =>
        AssertOpenFails(WriteRaw("size.safetensors", "{\"w\": {\"dtype\": \"BF16\", \"shape\": [3, 2], \"data_offsets\": [0, 8]}}", 16),
            "tensor 'w'", "8 bytes of data", "[3, 2] x BF16 needs 12");

    [Fact]
    public void HugeShapeDoesNotOverflow() =>
        AssertOpenFails(WriteRaw("huge.safetensors",
                "{\"w\": {\"dtype\": \"F32\", \"shape\": [2147483647, 2147483647, 2147483647], \"data_offsets\": [0, 4]}}", 16),
            "tensor 'w'", "needs");

    [Fact]
    public void MissingFileAndReadAfterDispose()
    {
        AssertOpenFails(_temp.File("absent.safetensors"), "file not found");
        var path = _temp.File("ok.safetensors");
        SafeTensorsWriter.Write(path, [new("w", ElementType.F32, [1], Floats(1))]);
        var file = SafeTensorsFile.Open(path);
        AssertError(() => file.Info("nope"), "ok.safetensors", "tensor 'nope' is missing");
        file.Dispose();
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.Read("w"));
    }

    // ---- Hugging Face directories ----

    private static LlamaConfig TinyConfig => new(4, 8, 1, 2, 1, 6, 16, 1e-5f, 10000f, true, 1, [2]);

    private static IEnumerable<SafeTensorOutput> TinyTensors(LlamaConfig config, Func<string, int[], int[]>? reshape = null) =>
        ModelCheckpoint.Names.Expected(config).Select(t =>
        {
            var shape = reshape?.Invoke(t.Name, t.Shape) ?? t.Shape;
            // Not zeros: an embedding, final norm or LM head of zeros is refused (every logit would be the same).
            return new SafeTensorOutput(t.Name, ElementType.F32, shape, Floats(Enumerable.Repeat(0.5f, shape.Aggregate(1, (a, b) => a * b)).ToArray()));
        });

    private string TinyModel(string name, JsonObject? configOverride = null, IEnumerable<SafeTensorOutput>? tensors = null)
    {
        var dir = _temp.File(name);
        Directory.CreateDirectory(dir);
        var config = JsonNode.Parse(TinyConfig.ToJson())!.AsObject();
        foreach (var (key, value) in configOverride ?? []) config[key] = value?.DeepClone();
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors ?? TinyTensors(TinyConfig));
        return dir;
    }

    /// <summary>The model opens and every tensor its config expects reads with its shape.</summary>
    private static void AssertOpensWhole(string dir)
    {
        using var model = ModelCheckpoint.Open(dir);
        foreach (var (name, shape) in ModelCheckpoint.Names.Expected(model.Config)) Assert.Equal(shape, model.Read(name, shape).Shape);
    }

    [Fact]
    public void TinyModelOpens() => AssertOpensWhole(TinyModel("ok"));

    [Fact]
    public void MissingTensor()
    {
        var dir = TinyModel("missing", tensors: TinyTensors(TinyConfig).Where(t => t.Name != "model.layers.0.mlp.up_proj.weight"));
        using var model = HfModelDirectory.Open(dir);
        Assert.False(model.Contains("model.layers.0.mlp.up_proj.weight"));
        AssertError(() => model.Read("model.layers.0.mlp.up_proj.weight", 8, 4), "model.safetensors", "tensor 'model.layers.0.mlp.up_proj.weight' is missing");
    }

    [Fact]
    public void ShapeDisagreesWithConfig()
    {
        var dir = TinyModel("shape", tensors: TinyTensors(TinyConfig, (name, shape) => name == "model.layers.0.self_attn.k_proj.weight" ? [4, 4] : shape));
        using var model = ModelCheckpoint.Open(dir);
        var kv = model.Config.KvDim;
        AssertError(() => model.Read("model.layers.0.self_attn.k_proj.weight", kv, model.Config.Dim),
            "model.safetensors", "'model.layers.0.self_attn.k_proj.weight' has shape [4, 4] but the configuration in", "config.json implies [2, 4]");
    }

    [Theory]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("vocab_size")]
    [InlineData("max_position_embeddings")]
    [InlineData("rms_norm_eps")]
    public void MissingConfigField(string field)
    {
        var dir = TinyModel("config-" + field);
        var path = Path.Combine(dir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        json.Remove(field);
        File.WriteAllText(path, json.ToJsonString());
        AssertError(() => ModelCheckpoint.Open(dir), "config.json", $"required field '{field}' is missing");
    }

    [Theory]
    [InlineData("hidden_size", "\"big\"", "field 'hidden_size' is not an integer")]
    [InlineData("hidden_size", "4.5", "field 'hidden_size' is not an integer")]
    [InlineData("hidden_size", "1e12", "field 'hidden_size' is not an integer")]
    [InlineData("rms_norm_eps", "\"small\"", "field 'rms_norm_eps' is not a number")]
    [InlineData("rms_norm_eps", "0", "rms_norm_eps 0 must be positive")]
    [InlineData("num_attention_heads", "3", "not a multiple of the 3 attention heads")]
    [InlineData("hidden_act", "\"gelu\"", "hidden_act 'gelu' is not supported")]
    [InlineData("hidden_act", "7", "field 'hidden_act' is not a string")]
    [InlineData("tie_word_embeddings", "\"yes\"", "field 'tie_word_embeddings' is not true or false")]
    [InlineData("eos_token_id", "[2, \"x\"]", "field 'eos_token_id' is not an integer or a list of integers")]
    [InlineData("eos_token_id", "99", "eos_token_id 99 is outside the vocabulary of 6")]
    [InlineData("bos_token_id", "-1", "bos_token_id -1 is outside the vocabulary of 6")]
    [InlineData("rope_scaling", "{\"type\": \"dynamic\", \"factor\": 2.0}", "rope_scaling type 'dynamic' is not supported")]
    public void BadConfigField(string field, string value, string problem)
    {
        var dir = TinyModel("bad-" + field, new JsonObject { [field] = JsonNode.Parse(value) });
        AssertError(() => ModelCheckpoint.Open(dir), "config.json", problem);
    }

    [Fact]
    public void ConfigNotJson()
    {
        var dir = TinyModel("notjson");
        File.WriteAllText(Path.Combine(dir, "config.json"), "{ hidden_size: ");
        AssertError(() => ModelCheckpoint.Open(dir), "config.json", "not valid JSON");
        File.Delete(Path.Combine(dir, "config.json"));
        AssertError(() => ModelCheckpoint.Open(dir), "config.json", "file not found");
    }

    [Fact]
    public void NoWeights()
    {
        var dir = TinyModel("noweights");
        File.Delete(Path.Combine(dir, "model.safetensors"));
        AssertError(() => ModelCheckpoint.Open(dir), "noweights", "neither model.safetensors nor model.safetensors.index.json");
    }

    private string ShardedModel(string name, Func<JsonObject, JsonObject>? editIndex = null)
    {
        var dir = _temp.File(name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), TinyConfig.ToJson());
        var tensors = TinyTensors(TinyConfig).ToList();
        var half = tensors.Count / 2;
        SafeTensorsWriter.Write(Path.Combine(dir, "model-00001-of-00002.safetensors"), tensors.Take(half));
        SafeTensorsWriter.Write(Path.Combine(dir, "model-00002-of-00002.safetensors"), tensors.Skip(half));
        var map = new JsonObject();
        for (var i = 0; i < tensors.Count; i++) map[tensors[i].Name] = i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
        var index = new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = 0 }, ["weight_map"] = map };
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), (editIndex?.Invoke(index) ?? index).ToJsonString());
        return dir;
    }

    [Fact]
    public void ShardedModelOpens() => AssertOpensWhole(ShardedModel("sharded"));

    /// <summary>The index maps a tensor the shard lacks, or to a shard that does not exist.</summary>
    [Theory]
    [InlineData("shard-tensor", "model.layers.0.extra.weight", "model-00002-of-00002.safetensors", "tensor 'model.layers.0.extra.weight' is missing")]
    [InlineData("shard-file", "model.norm.weight", "model-00003-of-00002.safetensors", "not found")]
    public void ShardIndexPointsAtMissing(string name, string tensor, string shard, string problem)
    {
        var dir = ShardedModel(name, index =>
        {
            index["weight_map"]![tensor] = shard;
            return index;
        });
        AssertError(() => ModelCheckpoint.Open(dir), shard, problem, "model.safetensors.index.json");
    }

    [Theory]
    [InlineData("{\"weight_map\": 5}", "missing weight_map")]
    [InlineData("{\"weight_map\": {\"model.norm.weight\": 5}}", "weight_map entry 'model.norm.weight' is not a file name")]
    [InlineData("{\"weight_map\": {\"model.norm.weight\": \"../x.safetensors\"}}", "must be a file in the model directory")]
    [InlineData("not json", "not valid JSON")]
    public void BadShardIndex(string index, string problem)
    {
        var dir = ShardedModel("bad-index");
        File.WriteAllText(Path.Combine(dir, "model.safetensors.index.json"), index);
        AssertError(() => ModelCheckpoint.Open(dir), "model.safetensors.index.json", problem);
    }

    // ---- llama2.c checkpoints ----

    private static readonly string Stories = SharedData.Path("models", "stories260K", "stories260K.bin");

    [Theory]
    [InlineData(1000, "1000 bytes but the header", "truncated")]
    [InlineData(1_056_539, "1056539 bytes but the header", "implies 1056540", "truncated")]
    [InlineData(20, "20 bytes, too short for a llama2.c header")]
    public void TruncatedLlama2c(int length, params string[] problems)
    {
        var path = _temp.File("cut.bin");
        File.WriteAllBytes(path, File.ReadAllBytes(Stories)[..length]);
        AssertError(() => ModelCheckpoint.Open(path), "cut.bin", problems);
    }

    [Fact]
    public void Llama2cTrailingBytesAndBadHeaders()
    {
        var original = File.ReadAllBytes(Stories);
        var path = _temp.File("long.bin");
        File.WriteAllBytes(path, [.. original, 0, 0, 0, 0]);
        AssertError(() => ModelCheckpoint.Open(path), "long.bin", "1056544 bytes but the header", "implies 1056540");

        void WithHeader(int index, int value, params string[] problems)
        {
            var bytes = (byte[])original.Clone();
            BitConverter.GetBytes(value).CopyTo(bytes, 4 * index);
            File.WriteAllBytes(path, bytes);
            AssertError(() => ModelCheckpoint.Open(path), "long.bin", problems);
        }
        WithHeader(5, int.MinValue, "vocab");
        WithHeader(5, 0, "dimensions must be positive");
        WithHeader(0, int.MaxValue, "hidden size 2147483647 is not a multiple of the 8 attention heads");
        WithHeader(2, int.MaxValue, "bytes but the header");
        WithHeader(0, 0x616b3432, "llama2.c version", "legacy");
    }

    [Fact]
    public void Llama2cImportPermutesQueryAndKeyToHalves()
    {
        using var model = Llama2cCheckpoint.Open(Stories);
        var c = model.Config;
        Assert.Equal((64, 172, 5, 8, 4, 512, 512, true), (c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, c.VocabSize, c.MaxSeqLen, c.TiedEmbeddings));
        Assert.Equal(SharedData.Path("models", "stories260K", "tok512.model"), model.TokenizerPath);
        // Row 1 of head 0 in the halves convention is llama2.c's row 2 (the first element of the second pair).
        var raw = File.ReadAllBytes(Stories);
        var wqOffset = 28 + 4 * (512 * 64 + 5 * 64);
        var rawRow2 = MemoryMarshal.Cast<byte, float>(raw.AsSpan(wqOffset + 4 * 2 * 64, 4 * 64)).ToArray();
        var wq = model.Read("model.layers.0.self_attn.q_proj.weight", 64, 64).ToFloats();
        Assert.Equal(rawRow2, wq.AsSpan(64, 64).ToArray());
    }

    // ---- tokenizers ----

    [Fact]
    public void TruncatedTokenizerBin()
    {
        var bytes = File.ReadAllBytes(SharedData.Path("models", "stories260K", "tok512.bin"));
        var path = _temp.File("tok512.bin");
        File.WriteAllBytes(path, bytes[..^3]);
        AssertError(() => TextTokenizer.Load(path), "tok512.bin", "truncated at token 511");
        File.WriteAllBytes(path, bytes[..(4 + 8 + 5 + 4)]);
        AssertError(() => TextTokenizer.Load(path), "tok512.bin", "truncated at token 1");
        var bad = (byte[])bytes.Clone();
        BitConverter.GetBytes(1000).CopyTo(bad, 8); // length of token 0
        File.WriteAllBytes(path, bad);
        AssertError(() => TextTokenizer.Load(path), "tok512.bin", "token 0 has length 1000");
    }

    [Fact]
    public void GarbageTokenizerModel()
    {
        var path = _temp.File("tokenizer.model");
        File.WriteAllBytes(path, Enumerable.Range(0, 300).Select(i => (byte)(i * 37 + 11)).ToArray());
        AssertError(() => TextTokenizer.Load(path), "tokenizer.model", "SentencePiece");
        File.WriteAllBytes(path, File.ReadAllBytes(SharedData.Path("models", "stories260K", "tok512.model"))[..4000]);
        AssertError(() => TextTokenizer.Load(path), "tokenizer.model", "not a valid SentencePiece model");
        File.WriteAllText(path, "");
        AssertError(() => TextTokenizer.Load(path), "tokenizer.model", "empty");
    }

    [Fact]
    public void MissingTokenizer()
    {
        AssertError(() => TextTokenizer.Load(_temp.File("nothere.model")), "nothere.model", "tokenizer file not found");
        Assert.Throws<ArgumentException>(() => TextTokenizer.Load(""));
    }
}
