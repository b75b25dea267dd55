namespace Kangaroo.Native.Tests.Engine;

/// <summary>Greedy self-speculative decoding commits exactly the golden (autoregressive) tokens,
/// whatever the exit layer, draft length, threshold and draft head.</summary>
public sealed class KangarooLosslessTests
{
    public static IEnumerable<object[]> Settings()
    {
        // exit layer 1..L-1, gamma 1..8, eta 0..1, adapter seeds; each over all golden prompts.
        yield return [1, 1, 0.0f, 1];
        yield return [2, 4, 0.6f, 2];
        yield return [3, 6, 0.6f, 3];
        yield return [4, 8, 1.0f, 4];
        yield return [1, 8, 0.3f, 5];
        yield return [4, 2, 0.9f, 6];
    }

    [Theory]
    [MemberData(nameof(Settings))]
    public void RandomAdapterMatchesGolden(int exitLayer, int gamma, float eta, int seed)
    {
        using var model = TestModels.Stories();
        var adapter = AdapterWeights.Random(model.Config.Dim, exitLayer, seed);
        using var head = new AdapterHead(model, adapter);
        AssertGolden(new SelfSpeculativeDecoder(model, head, new SpeculationOptions(exitLayer, gamma, eta)));
    }

    [Theory]
    [InlineData(1, 0.0f)]
    [InlineData(3, 0.6f)]
    [InlineData(8, 0.9f)]
    public void TrainedAdapterMatchesGolden(int gamma, float eta)
    {
        using var model = TestModels.Stories();
        var adapter = AdapterWeights.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, "kangaroo-adapter.safetensors"));
        using var head = new AdapterHead(model, adapter);
        AssertGolden(new SelfSpeculativeDecoder(model, head, new SpeculationOptions(adapter.ExitLayer, gamma, eta)));
    }

    [Theory]
    [InlineData(1, 6, 0.6f)]
    [InlineData(3, 3, 0.0f)]
    public void EarlyExitMatchesGolden(int exitLayer, int gamma, float eta)
    {
        using var model = TestModels.Stories();
        AssertGolden(new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(exitLayer, gamma, eta)));
    }

    private static void AssertGolden(Decoder decoder)
    {
        foreach (var golden in GoldenCase.All)
        {
            var generated = decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray();
            Assert.Equal(golden.GeneratedIds, generated);
            Assert.Equal(golden.GeneratedIds.Length, decoder.Stats.AcceptLengths.Sum());
        }
    }
}
