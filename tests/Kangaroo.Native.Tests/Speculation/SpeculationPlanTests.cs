namespace Kangaroo.Native.Tests.Speculation;

/// <summary>The choice between autoregressive decoding and speculation from costs and acceptance.</summary>
public sealed class SpeculationPlanTests
{
    private static AcceptanceStatistics Accepting(double rate)
    {
        var statistics = new AcceptanceStatistics();
        for (var depth = 1; depth <= AcceptanceStatistics.MaxDepth; depth++)
            for (var i = 0; i < 10000; i++) statistics.Record(depth, 0.85f, i < rate * 10000);
        return statistics;
    }

    /// <summary>Costs of a memory-bound model: a draft reads a tenth of the weights and verifying up to
    /// eight rows costs one step.</summary>
    private static readonly SpeculationCosts MemoryBound = new(10, 0.8, 1, Enumerable.Repeat(10.0, 9).ToArray(), 0.1);

    /// <summary>Costs of a compute-bound model with a deep exit: a draft costs 90 % of a step and each
    /// verified row a fifth of one.</summary>
    private static readonly SpeculationCosts ComputeBound = new(10, 8, 9, Enumerable.Range(1, 9).Select(k => 2.0 * k).ToArray(), 0.9);

    [Fact]
    public void SpeculatesWhereDraftsAreCheapAndAccepted()
    {
        var plan = SpeculationPlan.Make(MemoryBound, Accepting(0.8), maxDrafts: 8);
        Assert.True(plan.Speculates);
        Assert.Equal(8, plan.Options.Count);
        Assert.Equal(plan.Options.MaxBy(o => o.TokensPerSecond), plan.Chosen);
        // Expected speed from first principles for the chosen setting: tokens per round over the round's time.
        var c = plan.Chosen!;
        var forecast = Accepting(0.8).Forecast(c.DraftSteps, c.Threshold);
        var roundMs = forecast.DraftCountProbabilities.Select((p, i) => p * ((i + 1) * 1 + 0.8 + 10)).Sum();
        Assert.Equal(forecast.TokensPerRound / roundMs * 1000, c.TokensPerSecond, 6);
        Assert.Equal(c.TokensPerSecond / 100, c.Speedup, 6);
        Assert.True(c.Speedup > 2);
        Assert.Contains("speculate with gamma", plan.Describe());
    }

    [Fact]
    public void StaysAutoregressiveWhereDraftsCostAlmostAStep()
    {
        var plan = SpeculationPlan.Make(ComputeBound, Accepting(0.8), maxDrafts: 8);
        Assert.False(plan.Speculates);
        Assert.All(plan.Options, o => Assert.True(o.Speedup < SpeculationPlan.RequiredSpeedup));
        Assert.StartsWith("autoregressive", plan.Describe());
    }

    [Fact]
    public void StaysAutoregressiveWhereDraftsAreNeverAccepted()
    {
        var plan = SpeculationPlan.Make(MemoryBound, Accepting(0.0), maxDrafts: 8);
        Assert.False(plan.Speculates);
    }

    [Fact]
    public void ControllerFallsBackWhenRealisedSpeedDoesNotPayAndProbesAgain()
    {
        var controller = new SpeculationController(MemoryBound, 8);
        var acceptance = Accepting(0.8);
        controller.Begin(acceptance);
        Assert.Equal(SpeculationController.Mode.Speculate, controller.Current);
        for (var i = 0; i < SpeculationController.Window; i++) controller.Observe(2, 40, acceptance); // 0.05 tok/ms, autoregressive does 0.1
        Assert.Equal(SpeculationController.Mode.FallenBack, controller.Current);
        Assert.Equal(1, controller.Fallbacks);
        for (var i = 0; i < SpeculationController.ShortestFallback; i++) controller.Observe(1, 10, acceptance);
        Assert.Equal(SpeculationController.Mode.Speculate, controller.Current);
        for (var i = 0; i < SpeculationController.Window; i++) controller.Observe(4, 12, acceptance); // pays
        Assert.Equal(SpeculationController.Mode.Speculate, controller.Current);
        Assert.Equal(1, controller.Fallbacks);
    }
}
