namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// TinyStories-656K as published (tied weights stored once as lm_head.weight, tokenizer.json only):
/// prompts tokenised by the engine and generated greedily reproduce a float64 Hugging Face forward
/// (../shared/golden/tinystories656K-greedy.jsonl), on every device and on the reference device; the CPU
/// emulator checks the first 32 tokens of each record.
/// </summary>
public sealed class TinyStoriesGoldenTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    public static readonly string ModelPath = SharedData.Path("models", "TinyStories-656K");

    private static readonly IReadOnlyList<GreedyGolden> Records = GreedyGolden.Load("tinystories656K-greedy.jsonl");

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void GreedyMatchesHuggingFace(string kind)
    {
        using var checkpoint = ModelCheckpoint.Open(ModelPath);
        using var model = new LlamaModel(checkpoint, devices.Get(kind));
        var tokenizer = ModelTokenizer.Open(checkpoint.TokenizerPath!);
        var decoder = new AutoregressiveDecoder(model);
        Assert.True(Records.Count >= 8);
        foreach (var golden in Records)
        {
            Assert.Equal(golden.PromptIds, tokenizer.EncodePrompt(golden.Prompt));
            golden.Check(decoder, kind);
        }
    }

    /// <summary>Kangaroo (the adapter trained for this model in perf/adapters, an untrained one, and the
    /// early-exit head, all at exit layer 1 of 2) commits the same tokens: lossless on the new model too.</summary>
    [Theory, DeviceData("cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void SpeculativeDecodersMatchHuggingFace(string kind)
    {
        using var checkpoint = ModelCheckpoint.Open(ModelPath);
        using var model = new LlamaModel(checkpoint, devices.Get(kind));
        using var head = new AdapterHead(model, AdapterWeights.Random(model.Config.Dim, 1, 7));
        var trained = AdapterWeights.Load(Path.Combine(SharedData.RepositoryRoot, "perf", "adapters", "tinystories656K-l1.safetensors"))
            .CheckFits(model.Config, model.Fingerprint, "tinystories656K-l1.safetensors");
        using var trainedHead = new AdapterHead(model, trained);
        foreach (var decoder in new Decoder[]
                 {
                     new SelfSpeculativeDecoder(model, trainedHead, new SpeculationOptions(1, 6, 0.6f)),
                     new SelfSpeculativeDecoder(model, head, new SpeculationOptions(1, 6, 0.3f)),
                     new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(1, 4, 0f)),
                 })
            foreach (var golden in Records)
                Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNew, new SamplingOptions()));
    }

    [Fact]
    public void OpensAsPublished()
    {
        using var checkpoint = ModelCheckpoint.Open(ModelPath);
        Assert.True(checkpoint.Config.TiedEmbeddings);
        Assert.EndsWith("tokenizer.json", checkpoint.TokenizerPath);
        // Only lm_head.weight is stored; the embedding reads the same tensor.
        Assert.Equal(checkpoint.Read(ModelCheckpoint.Names.LmHead, 2048, 128).Bytes.ToArray(), checkpoint.Read(ModelCheckpoint.Names.Embedding, 2048, 128).Bytes.ToArray());
        Assert.Equal([2], checkpoint.Config.EosIds);
    }
}
