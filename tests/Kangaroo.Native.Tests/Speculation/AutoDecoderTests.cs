namespace Kangaroo.Native.Tests.Speculation;

/// <summary>
/// The <c>auto</c> decoder stays lossless whatever it decides: speculating throughout, stepping
/// autoregressively throughout, or switching back and forth within a generation (falling back when
/// realised speed does not pay, catching the adapter up when it probes again). Costs are made up so
/// that each regime is forced; the golden ids are llama2.c's.
/// </summary>
public sealed class AutoDecoderTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static AdapterWeights ShippedAdapter() =>
        AdapterWeights.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, InferenceSession.AdapterFileName));

    /// <summary>Speculation looks free and autoregressive steps take days: never falls back.</summary>
    private static readonly SpeculationCosts SpeculationPays = new(1e9, 1e-3, 1e-3, Enumerable.Repeat(1e-3, 9).ToArray(), 0.1);

    /// <summary>Drafts cost a step each: the plan is autoregressive from the start.</summary>
    private static readonly SpeculationCosts SpeculationCostsTooMuch = new(1, 1, 1, Enumerable.Range(1, 9).Select(k => (double)k).ToArray(), 1);

    /// <summary>The plan promises speculation, but a step is expected in a nanosecond, so the realised
    /// speed never pays: it falls back (after every 2 rounds here), probes again, and so on, for the whole
    /// generation, the adapter catching up on 3 to 256 plainly stepped positions each time.</summary>
    private static readonly SpeculationCosts SpeculationDisappoints = new(1e-6, 1e-12, 1e-12, Enumerable.Repeat(1e-12, 9).ToArray(), 0.1);

    private static SelfSpeculativeDecoder Auto(LlamaModel model, SpeculationCosts costs, AdapterWeights adapter) =>
        new(model, new AdapterHead(model, adapter), new SpeculationOptions(adapter.ExitLayer, 6), adapter.Acceptance?.Clone(AcceptanceStatistics.RunningMemory),
            new SpeculationController(costs, 6, window: 2, shortestFallback: 3), "auto");

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void AutoMatchesGoldenInEveryRegime(string kind)
    {
        using var model = TestModels.Stories(devices.Get(kind));
        var adapter = ShippedAdapter();
        var speculating = Auto(model, SpeculationPays, adapter);
        AssertGolden(kind, speculating);
        Assert.Equal(0, speculating.Controller!.Fallbacks);
        Assert.True(speculating.Stats.CompressionRate > 1.5);

        var plain = Auto(model, SpeculationCostsTooMuch, adapter);
        AssertGolden(kind, plain);
        Assert.Equal(SpeculationController.Mode.Autoregressive, plain.Controller!.Current);
        Assert.All(plain.Stats.AcceptLengths, n => Assert.Equal(1, n));

        var switching = Auto(model, SpeculationDisappoints, adapter);
        AssertGolden(kind, switching);
        if (kind != "ilgpu-cpu") Assert.True(switching.Controller!.Fallbacks >= 2, $"{switching.Controller.Fallbacks} fallbacks");
    }

    [Fact]
    public void AutoregressiveRegimeSamplesExactlyAsAutoregressiveDecoding()
    {
        // The all-autoregressive regime draws from the same sampler state as plain decoding, token for
        // token; speculative rounds under sampling are checked by SpeculativeSamplingTests.
        using var model = TestModels.Stories();
        var plain = Auto(model, SpeculationCostsTooMuch, ShippedAdapter());
        var reference = new AutoregressiveDecoder(model);
        var sampling = new SamplingOptions(Temperature: 0.9f, TopK: 20, Seed: 5);
        foreach (var golden in GoldenCase.All.Take(3))
            Assert.Equal(reference.Generate(golden.PromptIds, 64, sampling).ToArray(), plain.Generate(golden.PromptIds, 64, sampling).ToArray());
    }

    [Fact]
    public void SessionAutoUsesMeasuredCostsAndSaysWhy()
    {
        using var cache = new TempDirectory();
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        session.CostCache = new SpeculationCostCache(cache.Path);
        var decoder = Assert.IsType<SelfSpeculativeDecoder>(session.CreateDecoder("auto"));
        Assert.Equal("auto", decoder.Name);
        var controller = decoder.Controller!;
        Assert.Equal(7, controller.Costs.VerifyMs.Length);
        Assert.Single(Directory.GetFiles(cache.Path, "*.json"));
        var golden = GoldenCase.All[0];
        Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()));
        Assert.Equal(6, controller.Plan.Options.Count);
        Assert.Contains(controller.Plan.Speculates ? "speculate" : "autoregressive", controller.Plan.Describe());

        // A second decoder reads the costs back instead of measuring.
        var again = Assert.IsType<SelfSpeculativeDecoder>(session.CreateDecoder("auto"));
        Assert.Equal(controller.Costs.VerifyMs, again.Controller!.Costs.VerifyMs);
    }

    private static void AssertGolden(string kind, Decoder decoder)
    {
        foreach (var golden in GoldenCase.All.Take(kind == "ilgpu-cpu" ? 3 : GoldenCase.All.Count)) // the emulator is slow
        {
            var count = kind == "ilgpu-cpu" ? 16 : golden.MaxNewTokens;
            Assert.Equal(golden.GeneratedIds.Take(count), decoder.Generate(golden.PromptIds, count, new SamplingOptions()));
        }
    }
}
