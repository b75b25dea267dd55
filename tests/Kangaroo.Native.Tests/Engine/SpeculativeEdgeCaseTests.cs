namespace Kangaroo.Native.Tests.Engine;

/// <summary>Rounds that end early for reasons other than a rejected draft.</summary>
public sealed class SpeculativeEdgeCaseTests
{
    private static int[] Autoregressive(LlamaModel model, int[] prompt, int maxNew) =>
        new AutoregressiveDecoder(model).Generate(prompt, maxNew, new SamplingOptions()).ToArray();

    private static SelfSpeculativeDecoder Kangaroo(LlamaModel model, int exitLayer, int gamma, float eta, int seed = 7) =>
        new(model, new AdapterHead(model, AdapterWeights.Random(model.Config.Dim, exitLayer, seed)), new SpeculationOptions(exitLayer, gamma, eta));

    [Fact]
    public void StopTokenInsideAnAcceptedDraftEndsGeneration()
    {
        using var model = TestModels.Stories();
        // The early-exit head with eta 0 drafts a full round every time, so stops land inside drafts.
        var decoder = new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(4, 8, 0f));
        var stoppedInsideRound = 0;
        foreach (var golden in GoldenCase.All.Where(g => g.Stop == "bos"))
        {
            var generated = decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray();
            Assert.Equal(golden.GeneratedIds, generated);
            Assert.Equal(StopReason.StopToken, decoder.Stop);
            Assert.Equal(1, generated[^1]);
            if (decoder.Stats.AcceptLengths[^1] > 1) stoppedInsideRound++;
        }
        Assert.True(stoppedInsideRound > 0, "no golden story ended inside a multi-token round; the case is untested");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(12)]
    public void ContextEndReachedMidRound(int room)
    {
        using var model = TestModels.Stories();
        var context = model.Config.MaxSeqLen;
        var prompt = new[] { 1 }.Concat(Enumerable.Range(0, context - room).Select(i => 300 + i % 100)).ToArray();
        var expected = Autoregressive(model, prompt, 100);
        Assert.Equal(room, expected.Length); // prompt + generated = context + 1, as llama2.c
        var decoder = Kangaroo(model, 2, 8, 0f);
        Assert.Equal(expected, decoder.Generate(prompt, 100, new SamplingOptions()).ToArray());
    }

    [Fact]
    public void PromptOfOneToken()
    {
        using var model = TestModels.Stories();
        var golden = GoldenCase.All.Single(g => g.PromptIds.Length == 1);
        Assert.Equal(golden.GeneratedIds, Kangaroo(model, 3, 6, 0.2f).Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(5)]
    public void GammaLargerThanTheRemainingBudget(int maxNew)
    {
        using var model = TestModels.Stories();
        var prompt = GoldenCase.All[1].PromptIds;
        var decoder = Kangaroo(model, 1, 8, 0f);
        var generated = decoder.Generate(prompt, maxNew, new SamplingOptions()).ToArray();
        Assert.Equal(Autoregressive(model, prompt, maxNew), generated);
        Assert.Equal(maxNew, generated.Length);
        Assert.All(decoder.Stats.AcceptLengths, n => Assert.InRange(n, 1, maxNew));
    }

    [Fact]
    public void PromptLongerThanTheContextIsRefused()
    {
        using var model = TestModels.Stories();
        var prompt = Enumerable.Repeat(5, model.Config.MaxSeqLen + 1).Prepend(1).ToArray();
        var error = Assert.Throws<ArgumentException>(() => Kangaroo(model, 2, 4, 0.5f).Generate(prompt, 10, new SamplingOptions()).ToList());
        Assert.Contains("context is 512", error.Message);
    }

    [Theory]
    [InlineData(0, 6, 0.6f, "--exit-layer 0")]
    [InlineData(5, 6, 0.6f, "--exit-layer 5")]
    [InlineData(2, 0, 0.6f, "--draft-steps 0")]
    [InlineData(2, 6, -0.1f, "--threshold -0.1")]
    [InlineData(2, 6, 1.5f, "--threshold 1.5")]
    public void BadSpeculationSettingsAreRefused(int exitLayer, int gamma, float eta, string named)
    {
        using var model = TestModels.Stories();
        var error = Assert.Throws<ArgumentException>(() => new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(exitLayer, gamma, eta)));
        Assert.Contains(named, error.Message);
    }

    [Fact]
    public void AdapterForAnotherShapeIsRefused()
    {
        using var model = TestModels.Stories();
        var error = Assert.Throws<ModelFormatException>(() => new AdapterHead(model, AdapterWeights.Random(32, 2, 1)));
        Assert.Contains("hidden size 32", error.Message);
    }

    [Fact]
    public void AdapterForAnotherModelIsRefused()
    {
        using var model = TestModels.Stories();
        using var temp = new TempDirectory();
        var path = temp.File("adapter.safetensors");
        AdapterWeights.Random(model.Config.Dim, 2, 1).Save(path, "llama-d64-h172-l5-q8-kv4-v512-deadbeef");
        var error = Assert.Throws<ModelFormatException>(() => AdapterWeights.Load(path).CheckFits(model.Config, model.Fingerprint, path));
        Assert.Contains(path, error.Message);
        Assert.Contains("made for model 'llama-d64-h172-l5-q8-kv4-v512-deadbeef'", error.Message);
    }

    [Fact]
    public void AdapterRoundTripsThroughSafetensors()
    {
        using var model = TestModels.Stories();
        using var temp = new TempDirectory();
        var path = temp.File("adapter.safetensors");
        var weights = AdapterWeights.Random(model.Config.Dim, 3, 11);
        weights.Save(path, model.Fingerprint);
        var loaded = AdapterWeights.Load(path).CheckFits(model.Config, model.Fingerprint, path);
        Assert.Equal(3, loaded.ExitLayer);
        foreach (var (a, b) in weights.Parameters.Zip(loaded.Parameters)) Assert.Equal(a, b);
        Assert.Throws<ArgumentException>(() => AdapterWeights.Load(path, exitLayer: 2));
    }
}
