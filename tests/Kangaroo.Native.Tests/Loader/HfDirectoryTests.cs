using System.Text.Json.Nodes;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels.Cpu;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;
using N = Kangaroo.Native.Loader.ModelCheckpoint.Names;

namespace Kangaroo.Native.Tests.Loader;

/// <summary>Hugging Face directories as they are published (tied weights stored once, generation
/// config, tokenizer.json) and the config values, tensors and tokenizer files that must be refused in
/// one line naming the file and field.</summary>
public sealed class HfDirectoryTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static LlamaConfig Tiny => new(4, 8, 2, 2, 1, 6, 16, 1e-5f, 10000f, false, 1, [2]);

    private static void AssertError(Action action, string file, params string[] problems)
    {
        var e = Assert.Throws<ModelFormatException>(action);
        Assert.Contains(file, e.Message);
        foreach (var problem in problems) Assert.Contains(problem, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    /// <summary>A model directory: config.json from <see cref="Tiny"/> with overrides, and the tensors
    /// of <paramref name="tensorConfig"/> (default: the same config) minus <paramref name="omit"/>.</summary>
    private string Model(string name, JsonObject? overrides = null, LlamaConfig? tensorConfig = null, string[]? omit = null,
        Dictionary<string, string>? metadata = null)
    {
        var dir = _temp.File(name);
        Directory.CreateDirectory(dir);
        var config = JsonNode.Parse(Tiny.ToJson())!.AsObject();
        foreach (var (key, value) in overrides ?? []) config[key] = value?.DeepClone();
        File.WriteAllText(Path.Combine(dir, "config.json"), config.ToJsonString());
        var random = new Random(1);
        var tensors = N.Expected(tensorConfig ?? Tiny).Where(t => !(omit ?? []).Contains(t.Name)).Select(t =>
        {
            var values = Enumerable.Range(0, t.Shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)random.NextDouble()).ToArray();
            return new SafeTensorOutput(t.Name, ElementType.F32, t.Shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        });
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors, metadata);
        return dir;
    }

    [Fact]
    public void TiedWeightsStoredOnceUnderEitherName()
    {
        var tied = Tiny with { TiedEmbeddings = true };
        var tiedJson = new JsonObject { ["tie_word_embeddings"] = true };
        // Only the embedding: the LM head reads it.
        using (var onlyEmbedding = ModelCheckpoint.Open(Model("embedding", tiedJson, tied)))
            Assert.Equal(onlyEmbedding.Read(N.Embedding, 6, 4).Bytes.ToArray(), onlyEmbedding.Read(N.LmHead, 6, 4).Bytes.ToArray());
        // Only lm_head.weight, found through tie_word_embeddings or through save_pretrained's __metadata__ alias.
        var onlyHead = tied with { TiedEmbeddings = false };
        using (var byTie = ModelCheckpoint.Open(Model("head", tiedJson, onlyHead, [N.Embedding])))
            Assert.Equal(byTie.Read(N.LmHead, 6, 4).Bytes.ToArray(), byTie.Read(N.Embedding, 6, 4).Bytes.ToArray());
        var aliased = Model("alias", tiedJson, onlyHead, [N.Embedding], new() { [N.Embedding] = N.LmHead, ["format"] = "pt" });
        using (var byAlias = ModelCheckpoint.Open(aliased))
        {
            Assert.True(byAlias.Contains(N.Embedding));
            using var model = new LlamaModel(byAlias, new CpuDevice());
            Assert.Equal(6 * 4 * 4, model.LmHead.Bytes);
        }
        // Untied and no embedding: missing, named.
        using var untied = ModelCheckpoint.Open(Model("untied", tensorConfig: Tiny, omit: [N.Embedding]));
        AssertError(() => untied.Read(N.Embedding, 6, 4), "model.safetensors", $"tensor '{N.Embedding}' is missing");
    }

    [Theory]
    [InlineData("model_type", "\"gpt2\"", "model_type 'gpt2' is not supported (supported: llama, mistral, qwen2)")]
    [InlineData("mlp_bias", "true", "mlp_bias true is not supported")]
    [InlineData("quantization_config", "{\"quant_method\": \"gptq\", \"bits\": 4}", "quantization_config (\"gptq\") is not supported")]
    [InlineData("rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}", "rope_scaling type 'yarn' is not supported (supported: linear, llama3)")]
    [InlineData("rope_scaling", "{\"rope_type\": \"linear\"}", "rope_scaling.factor is missing")]
    [InlineData("rope_scaling", "{\"rope_type\": \"linear\", \"factor\": -2}", "rope_scaling.factor -2 must be positive")]
    [InlineData("max_position_embeddings", "2147483647", "max_position_embeddings 2147483647 is absurdly large")]
    [InlineData("max_position_embeddings", "1e9", "field 'max_position_embeddings' is not an integer")]
    [InlineData("vocab_size", "100000000", "vocab_size 100000000 is absurdly large")]
    [InlineData("head_dim", "3", "head size 3 must be even")]
    [InlineData("attention_bias", "\"yes\"", "field 'attention_bias' is not true or false")]
    public void UnsupportedConfigRefusedByName(string field, string value, string problem) =>
        AssertError(() => ModelCheckpoint.Open(Model("bad-" + field, new JsonObject { [field] = JsonNode.Parse(value) })).Dispose(), "config.json", problem);

    [Fact]
    public void DuplicateKeyNamesTheFile()
    {
        var dir = Model("duplicate");
        var path = Path.Combine(dir, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"hidden_size\":4", "\"hidden_size\":4,\"hidden_size\":8"));
        var e = Assert.Throws<ModelFormatException>(() => ModelCheckpoint.Open(dir).Dispose());
        Assert.Contains("config.json", e.Message);
        Assert.Contains("hidden_size", e.Message);
        Assert.DoesNotContain("An item with the same key", e.Message);
    }

    [Fact]
    public void TensorsTheConfigDoesNotUseAreAnError()
    {
        // config.json says 1 layer, the file has 2.
        var dir = Model("extra-layer", new JsonObject { ["num_hidden_layers"] = 1 }, Tiny);
        AssertError(() => ModelCheckpoint.Open(dir).Dispose(), "model.safetensors", "tensor 'model.layers.1.", "not used by the configuration", "num_hidden_layers 1");
        // Biases in the file but attention_bias false.
        var biased = Model("biases", tensorConfig: Tiny with { AttentionBias = true });
        AssertError(() => ModelCheckpoint.Open(biased).Dispose(), "model.safetensors", "self_attn.q_proj.bias", "attention_bias false");
    }

    [Fact]
    public void SlidingWindowBoundsTheContext()
    {
        var dir = Model("mistral", new JsonObject { ["model_type"] = "mistral", ["sliding_window"] = 8 });
        using var checkpoint = ModelCheckpoint.Open(dir);
        Assert.Equal(8, checkpoint.Config.SlidingWindow);
        using (var model = new LlamaModel(checkpoint, new CpuDevice())) Assert.Equal(8, model.Context);
        var e = Assert.Throws<ArgumentException>(() => new LlamaModel(checkpoint, new CpuDevice(), context: 12));
        Assert.Contains("sliding_window 8", e.Message);
        // Qwen2's sliding_window applies only with use_sliding_window.
        using var qwen = ModelCheckpoint.Open(Model("qwen2", new JsonObject { ["model_type"] = "qwen2", ["sliding_window"] = 8 }, Tiny with { AttentionBias = true }));
        Assert.Null(qwen.Config.SlidingWindow);
    }

    [Fact]
    public void ContextIsChosenAndNeverSizedFromAnAbsurdConfig()
    {
        // max_position_embeddings 16M (accepted, the most a config may say) does not allocate 16M positions by default.
        var dir = Model("long", new JsonObject { ["max_position_embeddings"] = LlamaConfig.MaxDimension });
        using var checkpoint = ModelCheckpoint.Open(dir);
        var device = new CpuDevice();
        using (var model = new LlamaModel(checkpoint, device, context: 32))
        {
            Assert.Equal(32, model.Context);
            Assert.True(device.AllocatedBytes < 1 << 20);
            var decoder = new AutoregressiveDecoder(model);
            var e = Assert.Throws<ArgumentException>(() => decoder.Generate(Enumerable.Repeat(3, 40).ToArray(), 1, new SamplingOptions()));
            Assert.Contains("the prompt is 40 tokens but the context is 32 positions", e.Message);
            Assert.Contains("--context", e.Message);
        }
        Assert.True(ContextSize.Default(checkpoint.Config, device, 0) <= LlamaConfig.MaxDimension);
        var tooLong = Assert.Throws<ArgumentException>(() => new LlamaModel(checkpoint, device, context: LlamaConfig.MaxDimension + 1));
        Assert.Contains("exceeds the model's max_position_embeddings", tooLong.Message);
        Assert.Throws<ArgumentException>(() => new LlamaModel(checkpoint, device, context: 0));
    }

    [Fact]
    public void GenerationConfigAddsStopTokens()
    {
        var dir = Model("generation", new JsonObject { ["eos_token_id"] = new JsonArray(2, 3) });
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), "{\"bos_token_id\": 1, \"eos_token_id\": [3, 5]}");
        using (var checkpoint = ModelCheckpoint.Open(dir)) Assert.Equal([2, 3, 5], checkpoint.Config.EosIds);
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), "{\"eos_token_id\": 9}");
        AssertError(() => ModelCheckpoint.Open(dir).Dispose(), "generation_config.json", "eos_token_id 9");
    }

    [Fact]
    public void TokenizerEosTokenAlsoStops()
    {
        var dir = _temp.File("eos");
        Directory.CreateDirectory(dir);
        foreach (var file in Directory.GetFiles(SharedData.Path("models", "TinyStories-656K")))
            File.WriteAllBytes(Path.Combine(dir, Path.GetFileName(file)), File.ReadAllBytes(file));
        var configPath = Path.Combine(dir, "tokenizer_config.json");
        var json = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        json["eos_token"] = "<unk>";
        File.WriteAllText(configPath, json.ToJsonString());
        using var session = InferenceSession.Open(dir, "cpu");
        Assert.Equal([2, 0], session.Model.Config.EosIds);
    }

    // ---- tokenizer.json ----

    private string Tokenizer(string name, Func<JsonObject, JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(SharedData.Path("models", "TinyStories-656K", "tokenizer.json")))!.AsObject();
        var dir = _temp.File(name);
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, edit(json).ToJsonString());
        return path;
    }

    [Theory]
    [InlineData("model", "{\"type\": \"WordPiece\", \"vocab\": {}}", "tokenizer.model.type 'WordPiece' is not supported (only BPE models)")]
    [InlineData("model", "{\"type\": \"Unigram\", \"vocab\": []}", "tokenizer.model.type 'Unigram' is not supported")]
    [InlineData("pre_tokenizer", "{\"type\": \"BertPreTokenizer\"}", "tokenizer.pre_tokenizer type 'BertPreTokenizer' is not supported")]
    [InlineData("normalizer", "{\"type\": \"Lowercase\"}", "tokenizer.normalizer type 'Lowercase' is not supported")]
    [InlineData("decoder", "{\"type\": \"WordPiece\"}", "tokenizer.decoder type 'WordPiece' is not supported")]
    [InlineData("post_processor", "{\"type\": \"BertProcessing\"}", "tokenizer.post_processor type 'BertProcessing' is not supported")]
    [InlineData("added_tokens", "[{\"id\": \"x\", \"content\": \"<s>\"}]", "tokenizer.added_tokens[0].id is not an integer")]
    public void UnsupportedTokenizerRefusedByName(string field, string value, string problem)
    {
        var path = Tokenizer("bad-" + field, json =>
        {
            json[field] = JsonNode.Parse(value);
            return json;
        });
        AssertError(() => HfTokenizer.Load(path), "tokenizer.json", problem);
    }

    [Fact]
    public void MalformedTokenizerJson()
    {
        var dir = _temp.File("malformed");
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, "tokenizer.json");
        File.WriteAllText(path, "{\"model\": {\"type\": \"BPE\", ");
        AssertError(() => ModelTokenizer.Open(path), "tokenizer.json", "not valid JSON");
        File.WriteAllText(path, "[1, 2]");
        AssertError(() => ModelTokenizer.Open(path), "tokenizer.json", "not a JSON object");
        AssertError(() => ModelTokenizer.Open(Path.Combine(dir, "absent.json")), "absent.json", "cannot read tokenizer");
    }

    [Fact]
    public void TokenizerConfigDecidesBos()
    {
        var path = Tokenizer("config", json => json);
        var configPath = Path.Combine(Path.GetDirectoryName(path)!, "tokenizer_config.json");
        File.WriteAllText(configPath, "{\"add_bos_token\": false, \"eos_token\": {\"content\": \"<|end_story|>\"}}");
        var tokenizer = HfTokenizer.Load(path);
        Assert.Equal([80, 147, 201, 282, 57], tokenizer.EncodePrompt("Once upon a time"));
        Assert.Equal([2], tokenizer.EosIds);
        File.WriteAllText(configPath, "{\"add_bos_token\": true, \"bos_token\": \"<nope>\"}");
        AssertError(() => HfTokenizer.Load(path), "tokenizer_config.json", "tokenizer_config.bos_token '<nope>' is not a token");
    }
}
