using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine;

/// <summary>How the next token is chosen. Temperature 0 is greedy; otherwise the distribution is
/// softmax(logits / temperature) restricted to the <see cref="TopK"/> most likely tokens (0 = all) and
/// to the smallest set whose probability reaches <see cref="TopP"/> (1 = all), renormalised.</summary>
public sealed record SamplingOptions(float Temperature = 0f, int TopK = 0, float TopP = 1f, ulong Seed = 42)
{
    /// <summary>True at temperature 0: the most likely token is taken.</summary>
    public bool Greedy => Temperature == 0f;

    /// <summary>Returns the options if they are in range, else throws <see cref="ArgumentException"/>.</summary>
    public SamplingOptions Validate()
    {
        if (!(Temperature >= 0f) || !float.IsFinite(Temperature)) throw new ArgumentException($"--temperature {Temperature} must be >= 0");
        if (TopK < 0) throw new ArgumentException($"--top-k {TopK} must be >= 0");
        if (!(TopP > 0f && TopP <= 1f)) throw new ArgumentException($"--top-p {TopP} must be in (0, 1]");
        return this;
    }
}

/// <summary>
/// The sampling math shared by every decoder: turning logits into the distribution a token is drawn
/// from, and drawing from it with a seeded generator (xorshift64*, as llama2.c), so a seed always
/// gives the same tokens.
/// </summary>
internal sealed class TokenSampler(SamplingOptions options)
{
    private ulong _state = options.Seed == 0 ? 0x9E3779B97F4A7C15UL : options.Seed;
    private int[] _order = [];
    private float[] _probabilities = [];
    private Comparison<int>? _byProbability;

    public SamplingOptions Options { get; } = options.Validate();

    /// <summary>A uniform float in [0, 1).</summary>
    public float NextUniform()
    {
        _state ^= _state >> 12;
        _state ^= _state << 25;
        _state ^= _state >> 27;
        return (uint)((_state * 0x2545F4914F6CDD1DUL) >> 32 >> 8) / 16777216f;
    }

    /// <summary>The error for logits that are NaN or infinite, which no token can be chosen from.</summary>
    public static InvalidOperationException NonFiniteLogits() =>
        new("the model produced non-finite logits (NaN or infinity): its weights are corrupt or its activations overflow; generation stopped");

    /// <summary>An arg max of finite logits, or the error: non-finite logits give a non-finite probability.</summary>
    public static TopToken RequireFinite(TopToken top) => float.IsFinite(top.Probability) ? top : throw NonFiniteLogits();

    /// <summary>In place: logits become the sampling distribution (temperature, top-k, top-p, renormalised).</summary>
    public void ToDistribution(Span<float> values)
    {
        var max = float.NegativeInfinity;
        foreach (var v in values) max = Math.Max(max, v);
        if (!float.IsFinite(max)) throw NonFiniteLogits(); // Math.Max propagates NaN
        var sum = 0.0;
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = MathF.Exp((values[i] - max) / Options.Temperature);
            sum += values[i];
        }
        for (var i = 0; i < values.Length; i++) values[i] = (float)(values[i] / sum);
        if (Options.TopK == 0 && Options.TopP >= 1f) return;

        if (_order.Length != values.Length) (_order, _probabilities) = (new int[values.Length], new float[values.Length]);
        for (var i = 0; i < _order.Length; i++) _order[i] = i;
        var probabilities = _probabilities; // buffers and comparer are kept: this runs for every sampled token
        values.CopyTo(probabilities);
        _byProbability ??= (a, b) => _probabilities[b] != _probabilities[a] ? _probabilities[b].CompareTo(_probabilities[a]) : a.CompareTo(b);
        Array.Sort(_order, _byProbability);
        var keep = Options.TopK > 0 ? Math.Min(Options.TopK, values.Length) : values.Length;
        var cumulative = 0.0;
        for (var i = 0; i < keep; i++)
        {
            cumulative += probabilities[_order[i]];
            if (cumulative >= Options.TopP)
            {
                keep = i + 1;
                break;
            }
        }
        values.Clear();
        var kept = 0.0;
        for (var i = 0; i < keep; i++) kept += probabilities[_order[i]];
        for (var i = 0; i < keep; i++) values[_order[i]] = (float)(probabilities[_order[i]] / kept);
    }

    /// <summary>Draws an index from a distribution (inverse CDF; the last non-zero entry absorbs rounding).</summary>
    public int Draw(ReadOnlySpan<float> distribution)
    {
        var u = NextUniform();
        var cumulative = 0f;
        var last = 0;
        for (var i = 0; i < distribution.Length; i++)
        {
            if (distribution[i] <= 0f) continue;
            cumulative += distribution[i];
            last = i;
            if (u < cumulative) return i;
        }
        return last;
    }
}
