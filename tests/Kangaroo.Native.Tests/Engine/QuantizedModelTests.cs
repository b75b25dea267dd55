namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// Models quantized at load (<c>--weights q8_0|q4_0</c>) or by llama.cpp's quantizer (a K-quant file): what
/// stays unquantized, and that Kangaroo (drafts and verification on the quantized weights, the adapter f32)
/// and the auto decoder commit exactly the tokens autoregressive decoding of the same quantized model
/// commits, on every device.
/// </summary>
public sealed class QuantizedModelTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static LlamaModel Quantized(ComputeDevice device, ElementType type, string? path = null)
    {
        using var checkpoint = ModelCheckpoint.Open(path ?? SharedData.EmbeddedModel);
        return new LlamaModel(checkpoint, device, quantize: type);
    }

    private static AdapterWeights ShippedAdapter() =>
        AdapterWeights.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, InferenceSession.AdapterFileName));

    [Theory]
    [InlineData(ElementType.Q8_0)]
    [InlineData(ElementType.Q4_0)]
    public void Matrices_are_quantized_and_norms_and_partial_block_rows_are_not(ElementType type)
    {
        using var full = TestModels.Stories();
        using var model = Quantized(devices.Get("cpu"), type);
        var weightType = type == ElementType.Q8_0 ? ElementType.Q8_0 : ElementType.Q4_0;
        Assert.Equal(weightType, model.LmHead.Type); // tied: the embedding, quantized
        // stories260K's down projections have rows of 172 values: they stay f32, as its norms do.
        Assert.Equal(Enumerable.Range(0, 5).Select(l => ModelCheckpoint.Names.Layer(l, ModelCheckpoint.Names.Down)), model.Weights.Unquantized);
        Assert.Equal([ElementType.F32, weightType], model.Weights.BytesByType.Keys.Order());
        Assert.Equal(model.Weights.Bytes, model.Weights.BytesByType.Values.Sum());
        var c = model.Config;
        var f32 = c.Layers * (2L * c.Dim + (long)c.Dim * c.HiddenDim) + c.Dim; // norms and down projections
        Assert.Equal(4 * f32, model.Weights.BytesByType[ElementType.F32]);
        Assert.Equal(full.Weights.Bytes - 4 * f32, (model.Weights.Bytes - 4 * f32) * 32 * 4 / (type == ElementType.Q8_0 ? 34 : 18));
        Assert.Equal(full.Fingerprint, model.Fingerprint); // the adapter of the unquantized model fits
    }

    [Fact]
    public void Only_block_types_are_accepted_for_quantizing()
    {
        using var checkpoint = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        Assert.Contains("F16", Assert.Throws<ArgumentException>(() => new LlamaModel(checkpoint, devices.Get("cpu"), quantize: ElementType.F16)).Message);
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Kangaroo_and_auto_match_autoregressive_decoding_of_the_same_quantized_model(string kind)
    {
        var prompts = GoldenCase.All.Take(kind == "ilgpu-cpu" ? 1 : 4).ToList(); // the emulator is slow
        var tokens = kind == "ilgpu-cpu" ? 12 : 96;
        foreach (var type in new[] { ElementType.Q8_0, ElementType.Q4_0 })
        {
            using var model = Quantized(devices.Get(kind), type);
            var adapter = ShippedAdapter();
            var expected = prompts.Select(p => new AutoregressiveDecoder(model).Generate(p.PromptIds, tokens, new SamplingOptions()).ToArray()).ToList();
            using var head = new AdapterHead(model, adapter);
            Decoder[] decoders =
            [
                new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, 6, 0.6f)),
                new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, 3, 0f)),
                // auto, forced to speculate throughout (drafts look free, plain steps take days)
                new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, 6), adapter.Acceptance?.Clone(AcceptanceStatistics.RunningMemory),
                    new SpeculationController(new SpeculationCosts(1e9, 1e-3, 1e-3, Enumerable.Repeat(1e-3, 9).ToArray(), 0.1), 6), "auto"),
                // auto falling back and probing again within a generation
                new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, 6), adapter.Acceptance?.Clone(AcceptanceStatistics.RunningMemory),
                    new SpeculationController(new SpeculationCosts(1e-6, 1e-12, 1e-12, Enumerable.Repeat(1e-12, 9).ToArray(), 0.1), 6, window: 2, shortestFallback: 3), "auto"),
            ];
            foreach (var decoder in decoders)
                for (var i = 0; i < prompts.Count; i++)
                    Assert.True(expected[i].SequenceEqual(decoder.Generate(prompts[i].PromptIds, tokens, new SamplingOptions())),
                        $"{decoder.Name} on {type} weights ({kind}) differs from autoregressive decoding on prompt {i}");
        }
    }

    /// <summary>Kangaroo stays lossless on a file llama.cpp's quantizer wrote: the widened TinyStories-656K in
    /// Q4_K_M, whose stacked q|k|v and gate|up mix Q4_K and Q6_K parts (one matmul per type into shared
    /// columns), drafting with an untrained adapter at the exit layer 1 (drafts often rejected, so both the
    /// accepted and the rejected paths of verification run) and always drafting 3 tokens.</summary>
    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Kangaroo_matches_autoregressive_decoding_of_a_K_quant_file(string kind)
    {
        const string file = "TinyStories-656K-x2-Q4_K_M.gguf";
        using var checkpoint = ModelCheckpoint.Open(SharedData.Path("models", "gguf-kquants", file));
        using var model = new LlamaModel(checkpoint, devices.Get(kind));
        var prompts = GreedyGolden.Load("gguf-kquants-greedy.jsonl").Where(r => r.Model == file).Take(kind == "ilgpu-cpu" ? 1 : 3).Select(r => r.PromptIds).ToList();
        var tokens = kind == "ilgpu-cpu" ? 12 : 64;
        var adapter = AdapterWeights.Random(model.Config.Dim, exitLayer: 1, seed: 5);
        using var head = new AdapterHead(model, adapter);
        Decoder[] decoders =
        [
            new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, 6, 0.6f)),
            new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, 3, 0f)),
        ];
        foreach (var prompt in prompts)
        {
            var expected = new AutoregressiveDecoder(model).Generate(prompt, tokens, new SamplingOptions()).ToArray();
            foreach (var decoder in decoders)
                Assert.True(expected.SequenceEqual(decoder.Generate(prompt, tokens, new SamplingOptions())), $"{decoder.Name} on the Q4_K_M file ({kind}) differs from autoregressive decoding");
        }
    }

    /// <summary>TinyStories-656K quantized at load gives the ids of the float64 goldens of the model's Q8_0
    /// file (written by llama.cpp's converter) and Q4_0 file (written by a reimplementation of llama.cpp's
    /// rounding, not by llama.cpp: ../shared/models/gguf/SOURCE.md) in ../shared/golden/gguf-greedy.jsonl:
    /// the same blocks, read by every device's kernels. That our rounding is llama.cpp's own is checked
    /// against llama.cpp-written files in LlamaCppQuantizationTests. The CPU emulator checks the first 32
    /// tokens of two records per type.</summary>
    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Quantized_TinyStories_matches_the_golden_of_its_Q8_0_and_Q4_0_files(string kind)
    {
        var goldens = GreedyGolden.Load("gguf-greedy.jsonl");
        foreach (var type in new[] { ElementType.Q8_0, ElementType.Q4_0 })
        {
            using var model = Quantized(devices.Get(kind), type, TinyStoriesGoldenTests.ModelPath);
            Assert.Empty(model.Weights.Unquantized);
            var decoder = new AutoregressiveDecoder(model);
            var records = goldens.Where(r => r.Model == $"TinyStories-656K-{type}.gguf").ToList();
            Assert.True(records.Count >= 8);
            foreach (var golden in records.Take(kind == "ilgpu-cpu" ? 2 : records.Count)) golden.Check(decoder, kind);
        }
    }

    [Fact]
    public void The_cli_quantizes_with_weights_and_refuses_other_types()
    {
        var result = KangarooProcess.Run("generate", "--prompt-ids", "1", "--max-new-tokens", "8", "--device", "cpu", "--weights", "q4_0", "--json");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("down_proj", result.Stderr); // the note on matrices that stay unquantized
        var refused = KangarooProcess.Run("generate", "--prompt-ids", "1", "--device", "cpu", "--weights", "q2_k"); // read, not written
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("q2_k", refused.Stderr);
    }
}
