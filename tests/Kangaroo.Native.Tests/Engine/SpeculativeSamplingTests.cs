namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// Speculative sampling keeps the target's distribution: over thousands of seeds, the tokens Kangaroo
/// samples at each of the first positions are distributed like autoregressive sampling's (two-sample
/// chi-square test at significance 0.001, rare tokens pooled). The same test rejects a decoder that
/// accepts every draft, which samples from the adapter's distribution instead.
/// </summary>
public sealed class SpeculativeSamplingTests
{
    private const int Seeds = 3000;
    private const int Positions = 4;
    private static readonly SamplingOptions Sampling = new(Temperature: 1f, TopK: 12);
    private static readonly int[] Prompt = GoldenCase.All[2].PromptIds;

    [Theory]
    [InlineData("kangaroo")]
    [InlineData("kangaroo with a draft vocabulary")]
    [InlineData("auto, switching")]
    public void SpeculativeSamplingMatchesAutoregressiveSampling(string variant)
    {
        using var model = TestModels.Stories();
        var reference = Sample(new AutoregressiveDecoder(model), seedOffset: 0);
        var speculative = Sample(Speculative(model, variant, rule: null), seedOffset: 1_000_000);
        for (var position = 0; position < Positions; position++)
        {
            var (statistic, critical) = ChiSquare(reference[position], speculative[position]);
            Assert.True(statistic < critical, $"position {position}: chi-square {statistic:F1} >= critical {critical:F1}");
        }
    }

    [Theory]
    [InlineData("kangaroo")]
    [InlineData("kangaroo with a draft vocabulary")]
    public void TheTestRejectsAWrongAcceptanceRule(string variant)
    {
        using var model = TestModels.Stories();
        var reference = Sample(new AutoregressiveDecoder(model), seedOffset: 0);
        var wrong = Sample(Speculative(model, variant, (_, _) => 1f), seedOffset: 1_000_000);
        var rejected = Enumerable.Range(0, Positions).Count(position =>
        {
            var (statistic, critical) = ChiSquare(reference[position], wrong[position]);
            return statistic >= critical;
        });
        Assert.True(rejected >= 2, $"only {rejected} of {Positions} positions rejected the always-accept rule");
    }

    /// <summary>Kangaroo with the trained adapter shipped with the model, which drafts tokens the target
    /// often accepts, so every branch of the acceptance rule (accept, resample from the residual, bonus
    /// token) is exercised; with a draft vocabulary of 160 of the 512 ids (q is 0 for the others); or as
    /// <c>auto</c> made to fall back after every round and probe again after one or two plain steps.</summary>
    private static SelfSpeculativeDecoder Speculative(LlamaModel model, string variant, Func<float, float, float>? rule)
    {
        var adapter = AdapterWeights.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, "kangaroo-adapter.safetensors"));
        if (variant.Contains("draft vocabulary")) adapter.DraftVocabulary = Enumerable.Range(0, 512).Where(id => id % 16 < 5).ToArray();
        var options = new SpeculationOptions(adapter.ExitLayer, DraftSteps: 3, Threshold: 0f);
        var head = new AdapterHead(model, adapter);
        var controller = variant.StartsWith("auto")
            ? new SpeculationController(new SpeculationCosts(1e-6, 1e-12, 1e-12, Enumerable.Repeat(1e-12, 4).ToArray(), 0.1), 3, window: 1, shortestFallback: 1)
            : null;
        var decoder = new SelfSpeculativeDecoder(model, head, options, controller: controller);
        return rule is null ? decoder : new SelfSpeculativeDecoder(model, head, options) { AcceptanceProbability = rule };
    }

    private static Dictionary<int, int>[] Sample(Decoder decoder, int seedOffset)
    {
        var counts = Enumerable.Range(0, Positions).Select(_ => new Dictionary<int, int>()).ToArray();
        for (var seed = 1; seed <= Seeds; seed++)
        {
            var tokens = decoder.Generate(Prompt, Positions, Sampling with { Seed = (ulong)(seed + seedOffset) }).ToArray();
            for (var p = 0; p < Math.Min(Positions, tokens.Length); p++)
                counts[p][tokens[p]] = counts[p].GetValueOrDefault(tokens[p]) + 1;
        }
        return counts;
    }

    /// <summary>Two-sample chi-square homogeneity statistic over tokens seen at least 10 times in all
    /// (the rest pooled), and the 0.999 quantile of chi-square with the matching degrees of freedom
    /// (Wilson-Hilferty approximation).</summary>
    private static (double Statistic, double Critical) ChiSquare(Dictionary<int, int> a, Dictionary<int, int> b)
    {
        var na = a.Values.Sum();
        var nb = b.Values.Sum();
        var categories = a.Keys.Union(b.Keys).Select(k => (a.GetValueOrDefault(k), b.GetValueOrDefault(k))).ToList();
        var frequent = categories.Where(c => c.Item1 + c.Item2 >= 10).ToList();
        var rare = categories.Except(frequent).Aggregate((0, 0), (s, c) => (s.Item1 + c.Item1, s.Item2 + c.Item2));
        if (rare.Item1 + rare.Item2 > 0) frequent.Add(rare);
        var statistic = 0.0;
        foreach (var (ca, cb) in frequent)
        {
            var total = ca + cb;
            var ea = total * (double)na / (na + nb);
            var eb = total * (double)nb / (na + nb);
            statistic += (ca - ea) * (ca - ea) / ea + (cb - eb) * (cb - eb) / eb;
        }
        var df = Math.Max(1, frequent.Count - 1);
        const double z = 3.0902; // standard normal 0.999 quantile
        var critical = df * Math.Pow(1 - 2.0 / (9 * df) + z * Math.Sqrt(2.0 / (9 * df)), 3);
        return (statistic, critical);
    }
}
