using System.Globalization;
using System.Text.Json.Serialization;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>One setting of a self-speculative round and what it is expected to give: tokens per
/// round, drafts per round, milliseconds per round and decode tokens per second.</summary>
public sealed record SpeculationOption(
    [property: JsonPropertyName("draft_steps")] int DraftSteps,
    [property: JsonPropertyName("threshold")] float Threshold,
    [property: JsonPropertyName("tokens_per_round")] double TokensPerRound,
    [property: JsonPropertyName("drafts_per_round")] double DraftsPerRound,
    [property: JsonPropertyName("round_ms")] double RoundMs,
    [property: JsonPropertyName("tokens_per_second")] double TokensPerSecond,
    [property: JsonPropertyName("speedup")] double Speedup);

/// <summary>
/// The choice between autoregressive decoding and self-speculative rounds, from measured costs and
/// acceptance statistics: the expected tokens per second of autoregressive decoding and of every
/// (gamma, eta) with gamma in 1..<c>maxDrafts</c> and eta in 0, 0.1, ..., 0.9. Speculation is chosen
/// only when its best setting is expected to beat autoregressive decoding by
/// <see cref="RequiredSpeedup"/>, a margin for the error of the forecast.
/// </summary>
public sealed record SpeculationPlan(
    [property: JsonPropertyName("autoregressive_tokens_per_second")] double AutoregressiveTokensPerSecond,
    [property: JsonPropertyName("options")] IReadOnlyList<SpeculationOption> Options,
    [property: JsonPropertyName("chosen")] SpeculationOption? Chosen)
{
    /// <summary>The forecast speedup over autoregressive decoding a setting needs to be chosen.</summary>
    public const double RequiredSpeedup = 1.05;

    /// <summary>Whether a setting was chosen: false means autoregressive decoding.</summary>
    [JsonIgnore]
    public bool Speculates => Chosen is not null;

    /// <summary>The best threshold for each number of drafts, from the costs and acceptance given.</summary>
    public static SpeculationPlan Make(SpeculationCosts costs, AcceptanceStatistics acceptance, int maxDrafts)
    {
        maxDrafts = Math.Min(maxDrafts, costs.MaxDrafts);
        var autoregressive = 1000 / costs.AutoregressiveStepMs;
        var options = new List<SpeculationOption>();
        for (var gamma = 1; gamma <= maxDrafts; gamma++)
        {
            SpeculationOption? best = null;
            for (var tenths = 0; tenths < AcceptanceStatistics.Buckets; tenths++)
            {
                var eta = tenths / 10f;
                var forecast = acceptance.Forecast(gamma, eta);
                var roundMs = forecast.DraftCountProbabilities.Select((p, i) => p * costs.RoundMs(i + 1)).Sum();
                var speed = forecast.TokensPerRound / roundMs * 1000;
                if (best is null || speed > best.TokensPerSecond)
                    best = new SpeculationOption(gamma, eta, forecast.TokensPerRound, forecast.ExpectedDrafts, roundMs, speed, speed / autoregressive);
            }
            options.Add(best!);
        }
        var top = options.MaxBy(o => o.TokensPerSecond);
        return new SpeculationPlan(autoregressive, options, top is not null && top.Speedup >= RequiredSpeedup ? top : null);
    }

    /// <summary>One line: what was chosen and why.</summary>
    public string Describe()
    {
        var best = Options.MaxBy(o => o.TokensPerSecond);
        return Chosen is { } c
            ? string.Create(CultureInfo.InvariantCulture, $"speculate with gamma {c.DraftSteps}, eta {c.Threshold:0.0#}: expected {c.TokensPerRound:F2} tokens per round, {c.TokensPerSecond:F0} tok/s, {c.Speedup:F2}x autoregressive ({AutoregressiveTokensPerSecond:F0} tok/s)")
            : string.Create(CultureInfo.InvariantCulture, $"autoregressive ({AutoregressiveTokensPerSecond:F0} tok/s expected): the best speculative setting{(best is null ? "" : $" (gamma {best.DraftSteps}, eta {best.Threshold:0.0#}, {best.TokensPerRound:F2} tokens per round)")} is expected at {best?.Speedup ?? 0:F2}x, below {RequiredSpeedup:F2}x");
    }
}
