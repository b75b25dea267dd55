namespace Kangaroo.Native.Tests.Training;

/// <summary>The adapter shipped beside the embedded model (perf/training.md records how it was
/// trained): greedy Kangaroo decoding at gamma 6, eta 0.6 commits exactly the golden tokens and at
/// least 2.5 tokens per verification round over the golden prompts.</summary>
public sealed class ShippedAdapterTests
{
    [Fact]
    public void ShippedAdapterIsLosslessAndCompressesAtLeast2Point5()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        Assert.NotNull(session.DefaultAdapterPath);
        var adapter = AdapterWeights.Load(session.DefaultAdapterPath!);
        Assert.Contains("train-adapter", adapter.Metadata["kangaroo.train.command"]);
        var decoder = session.CreateDecoder("kangaroo", draftSteps: 6, threshold: 0.6f);
        Assert.Equal("kangaroo", decoder.Name);
        var rounds = new List<int>();
        foreach (var golden in GoldenCase.All)
        {
            Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray());
            rounds.AddRange(decoder.Stats.AcceptLengths);
        }
        Assert.True(rounds.Average() >= 2.5, $"compression rate {rounds.Average():F3} over {rounds.Count} rounds");
    }
}
