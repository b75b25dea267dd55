namespace Kangaroo.Native.Tests.Speculation;

/// <summary>The forecast of tokens per round from acceptance statistics, checked against closed forms
/// and against rounds simulated draft by draft under the same model, and the statistics' file form.</summary>
public sealed class AcceptanceStatisticsTests
{
    /// <summary>Statistics where every depth has drafts at the given confidences, each accepted with
    /// the given rate (n drafts per cell, so the prior hardly matters).</summary>
    private static AcceptanceStatistics Made(params (float Confidence, double AcceptRate)[] cells)
    {
        var statistics = new AcceptanceStatistics();
        const int n = 20000;
        for (var depth = 1; depth <= AcceptanceStatistics.MaxDepth; depth++)
            foreach (var (confidence, rate) in cells)
                for (var i = 0; i < n; i++) statistics.Record(depth, confidence, i < rate * n);
        return statistics;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(6)]
    public void ConfidentDraftsThatAreAlwaysAcceptedFillTheRound(int gamma)
    {
        var forecast = Made((0.95f, 1.0)).Forecast(gamma, 0.6f);
        Assert.Equal(gamma + 1, forecast.TokensPerRound, 2);
        Assert.Equal(gamma, forecast.ExpectedDrafts, 2);
    }

    [Fact]
    public void UnsureDraftsStopDraftingAfterOne()
    {
        var forecast = Made((0.35f, 0.0)).Forecast(6, 0.6f);
        Assert.Equal(1, forecast.TokensPerRound, 2);
        Assert.Equal(1, forecast.ExpectedDrafts, 2);
        Assert.Equal(1, forecast.DraftCountProbabilities[0], 2);
    }

    [Fact]
    public void ForecastAgreesWithSimulatedRounds()
    {
        (float Confidence, double Rate)[] cells = [(0.15f, 0.1), (0.45f, 0.4), (0.65f, 0.6), (0.95f, 0.9)];
        var statistics = Made(cells);
        var random = new Random(7);
        foreach (var (gamma, eta) in new[] { (6, 0.6f), (3, 0.0f), (8, 0.4f) })
        {
            double tokens = 0, drafts = 0;
            const int rounds = 200_000;
            for (var r = 0; r < rounds; r++)
            {
                var acceptedSoFar = true;
                var committed = 1;
                for (var depth = 1; depth <= gamma; depth++)
                {
                    var (confidence, rate) = cells[random.Next(cells.Length)];
                    drafts++;
                    acceptedSoFar &= random.NextDouble() < rate;
                    if (acceptedSoFar) committed++;
                    if (confidence < eta) break;
                }
                tokens += committed;
            }
            var forecast = statistics.Forecast(gamma, eta);
            Assert.Equal(tokens / rounds, forecast.TokensPerRound, 1);
            Assert.Equal(drafts / rounds, forecast.ExpectedDrafts, 1);
            Assert.Equal(1, forecast.DraftCountProbabilities.Sum(), 6);
        }
    }

    [Fact]
    public void WithoutCountsTheHeadIsTakenAsCalibrated()
    {
        // Confidence uniform over the buckets, accepted as often as it is confident: a first draft is
        // accepted about half the time.
        var forecast = new AcceptanceStatistics().Forecast(1, 0f);
        Assert.Equal(1.5, forecast.TokensPerRound, 2);
    }

    [Fact]
    public void ARunningEstimateForgetsOldCounts()
    {
        var statistics = new AcceptanceStatistics(memory: 1000);
        for (var i = 0; i < 5000; i++) statistics.Record(1, 0.95f, accepted: false);
        for (var i = 0; i < 5000; i++) statistics.Record(1, 0.95f, accepted: true);
        Assert.True(statistics.Drafts(1) <= 1001);
        Assert.True(statistics.Forecast(1, 0f).TokensPerRound > 1.95);
    }

    [Fact]
    public void JsonRoundTripKeepsTheForecast()
    {
        var statistics = Made((0.25f, 0.2), (0.75f, 0.7));
        var copy = AcceptanceStatistics.FromJson(statistics.ToJson(), "test");
        Assert.Equal(statistics.Forecast(6, 0.6f).TokensPerRound, copy.Forecast(6, 0.6f).TokensPerRound, 6);
        Assert.Equal(statistics.Drafts(3), copy.Drafts(3));
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"buckets\": 5, \"drafts\": [], \"accepted\": []}")]
    [InlineData("{\"buckets\": 10, \"drafts\": [[1,2]], \"accepted\": [[0,0]]}")]
    [InlineData("{\"buckets\": 10, \"drafts\": [[1,1,1,1,1,1,1,1,1,1]], \"accepted\": [[2,0,0,0,0,0,0,0,0,0]]}")]
    [InlineData("{\"buckets\": 10}")]
    public void MalformedStatisticsNameTheFile(string json)
    {
        var error = Assert.Throws<ModelFormatException>(() => AcceptanceStatistics.FromJson(json, "adapter.safetensors"));
        Assert.StartsWith("adapter.safetensors: kangaroo.acceptance", error.Message);
    }
}
