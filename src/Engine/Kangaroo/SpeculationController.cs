namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// The <c>auto</c> decoder's judgement, round by round. At the start of a generation it plans from
/// the measured costs and the acceptance statistics (<see cref="SpeculationPlan"/>): autoregressive
/// decoding for the whole generation when no setting is expected to pay, else speculation with the
/// best (gamma, eta). While speculating it compares, every <see cref="Window"/> rounds, the realised
/// tokens per second with autoregressive decoding's and re-plans with the acceptance seen so far;
/// when speculation stopped paying it falls back to autoregressive steps for a while and then probes
/// again, waiting twice as long after each probe that did not pay (up to <see cref="LongestFallback"/>).
/// </summary>
public sealed class SpeculationController(SpeculationCosts costs, int maxDrafts, int window = SpeculationController.Window,
    int shortestFallback = SpeculationController.ShortestFallback)
{
    /// <summary>How the controller is decoding now.</summary>
    public enum Mode
    {
        /// <summary>Plain steps for the whole generation: no setting was expected to pay.</summary>
        Autoregressive,

        /// <summary>Self-speculative rounds with the plan's (gamma, eta).</summary>
        Speculate,

        /// <summary>Speculation stopped paying: plain steps for a while, then a probe.</summary>
        FallenBack,
    }

    /// <summary>Rounds between checks of the realised speed.</summary>
    public const int Window = 16;

    /// <summary>Autoregressive steps after the first fallback; doubled after each probe that did not pay.</summary>
    public const int ShortestFallback = 32;

    /// <summary>The most autoregressive steps of one fallback.</summary>
    public const int LongestFallback = 256;

    private double _autoregressiveMs = costs.AutoregressiveStepMs;
    private int _fallback = Math.Clamp(shortestFallback, 1, LongestFallback);
    private int _fallbackLeft;
    private int _rounds;
    private double _tokens, _milliseconds;

    /// <summary>The measured costs the plans are made from.</summary>
    public SpeculationCosts Costs { get; } = costs;
    /// <summary>The current plan: the settings weighed and the one chosen, if any.</summary>
    public SpeculationPlan Plan { get; private set; } = SpeculationPlan.Make(costs, new AcceptanceStatistics(), maxDrafts);
    /// <summary>How the controller is decoding now.</summary>
    public Mode Current { get; private set; }

    /// <summary>Times speculation stopped paying within generations and gave way to autoregressive steps.</summary>
    public int Fallbacks { get; private set; }

    /// <summary>Gamma of the chosen setting (1 without one).</summary>
    public int DraftSteps => Plan.Chosen?.DraftSteps ?? 1;
    /// <summary>Eta of the chosen setting (0 without one).</summary>
    public float Threshold => Plan.Chosen?.Threshold ?? 0f;

    /// <summary>Whether speculating for one sequence at a time beats one batched plain step over
    /// <paramref name="sequences"/> sequences, at the measured costs: true for one sequence when speculating.</summary>
    public bool SpeculatesBeside(int sequences) =>
        Current == Mode.Speculate && Plan.Chosen is { } chosen && (sequences == 1 || chosen.TokensPerSecond > sequences * 1000 / Costs.BatchStepMs(sequences));

    /// <summary>Starts a generation: plans from <paramref name="acceptance"/> and the costs, and speculates or not accordingly.</summary>
    public void Begin(AcceptanceStatistics acceptance)
    {
        Replan(acceptance);
        Current = Plan.Speculates ? Mode.Speculate : Mode.Autoregressive;
        (_rounds, _tokens, _milliseconds) = (0, 0, 0);
    }

    /// <summary>Records a round of the current mode: tokens committed and its wall time.</summary>
    public void Observe(int tokens, double milliseconds, AcceptanceStatistics acceptance)
    {
        switch (Current)
        {
            case Mode.FallenBack:
                _autoregressiveMs = 0.9 * _autoregressiveMs + 0.1 * milliseconds;
                if (--_fallbackLeft == 0) (Current, _rounds, _tokens, _milliseconds) = (Mode.Speculate, 0, 0, 0);
                return;
            case Mode.Speculate:
                (_rounds, _tokens, _milliseconds) = (_rounds + 1, _tokens + tokens, _milliseconds + milliseconds);
                if (_rounds < window) return;
                var pays = _tokens / _milliseconds > 1 / _autoregressiveMs;
                var previous = Plan;
                Replan(acceptance);
                (_rounds, _tokens, _milliseconds) = (0, 0, 0);
                if (pays)
                {
                    if (!Plan.Speculates) Plan = previous; // the forecast is pessimistic here: what was measured wins
                    _fallback = Math.Clamp(shortestFallback, 1, LongestFallback);
                    return;
                }
                Fallbacks++;
                (Current, _fallbackLeft) = (Mode.FallenBack, _fallback);
                _fallback = Math.Min(2 * _fallback, LongestFallback);
                return;
        }
    }

    private void Replan(AcceptanceStatistics acceptance) =>
        Plan = SpeculationPlan.Make(Costs with { AutoregressiveStepMs = _autoregressiveMs }, acceptance, maxDrafts);
}
