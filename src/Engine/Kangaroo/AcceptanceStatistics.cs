using System.Text.Json;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>What a round is expected to yield for one (gamma, eta): tokens committed (bonus included)
/// and the probability of each number of drafts d = 1..gamma (index d - 1).</summary>
public sealed record RoundForecast(double TokensPerRound, double[] DraftCountProbabilities)
{
    /// <summary>The expected number of drafts per round.</summary>
    public double ExpectedDrafts => DraftCountProbabilities.Select((p, i) => p * (i + 1)).Sum();
}

/// <summary>
/// How likely a draft is to be accepted, by its depth in the round (1 = the first draft) and the
/// head's confidence in it (its top-1 probability, in buckets of 0.1), counted over drafts whose
/// predecessors in the round were all accepted (later drafts cannot be accepted, whatever they are).
/// <c>train-adapter</c> measures it on held-out text and stores it in the adapter; decoders keep
/// counting while they run, halving old counts so that the estimate follows the text at hand.
/// <see cref="Forecast"/> turns it into the expected tokens per round of any (gamma, eta), treating
/// the depths of a round as independent given their confidence.
/// </summary>
public sealed class AcceptanceStatistics
{
    /// <summary>Confidence buckets: [0, 0.1), [0.1, 0.2), ..., [0.9, 1].</summary>
    public const int Buckets = 10;

    /// <summary>The deepest draft counted; gamma above it reuses the last depth's statistics.</summary>
    public const int MaxDepth = 8;

    /// <summary>The adapter file's metadata key under which the statistics are stored (<see cref="ToJson"/>).</summary>
    public const string MetadataKey = "kangaroo.acceptance";

    /// <summary>The memory of a decoder's running estimate: drafts per depth beyond which old counts are halved.</summary>
    public const double RunningMemory = 4000;

    private readonly double[,] _drafts = new double[MaxDepth, Buckets];
    private readonly double[,] _accepted = new double[MaxDepth, Buckets];
    private readonly double _memory;

    /// <summary>Empty statistics that keep every count, or at most about <paramref name="memory"/> per depth.</summary>
    public AcceptanceStatistics(double memory = double.PositiveInfinity) => _memory = memory;

    /// <summary>The bucket of a draft's confidence (its top-1 probability).</summary>
    public static int Bucket(float confidence) => Math.Clamp((int)(confidence * Buckets), 0, Buckets - 1);

    /// <summary>Drafts counted at <paramref name="depth"/> (1-based).</summary>
    public double Drafts(int depth) => Enumerable.Range(0, Buckets).Sum(b => _drafts[depth - 1, b]);

    /// <summary>Counts one draft whose predecessors in its round were all accepted.</summary>
    public void Record(int depth, float confidence, bool accepted)
    {
        var d = Math.Min(depth, MaxDepth) - 1;
        var b = Bucket(confidence);
        _drafts[d, b]++;
        if (accepted) _accepted[d, b]++;
        if (Drafts(d + 1) <= _memory) return;
        for (var i = 0; i < Buckets; i++)
        {
            _drafts[d, i] /= 2;
            _accepted[d, i] /= 2;
        }
    }

    /// <summary>A copy of the counts that keeps at most about <paramref name="memory"/> drafts per depth.</summary>
    public AcceptanceStatistics Clone(double memory = double.PositiveInfinity)
    {
        var copy = new AcceptanceStatistics(memory);
        Array.Copy(_drafts, copy._drafts, _drafts.Length);
        Array.Copy(_accepted, copy._accepted, _accepted.Length);
        return copy;
    }

    /// <summary>
    /// Expected tokens per round and the distribution of the number of drafts, for at most
    /// <paramref name="gamma"/> drafts and the stop rule "draft again only after a draft at least
    /// <paramref name="eta"/> likely" (eta is taken at bucket resolution). Sparse cells borrow from
    /// all depths pooled, and the pool from a calibrated head (accepted as often as it is confident),
    /// so an adapter without statistics starts from that guess.
    /// </summary>
    public RoundForecast Forecast(int gamma, float eta)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(gamma, 1);
        var firstKept = Math.Clamp((int)Math.Ceiling(eta * Buckets - 1e-4), 0, Buckets);
        var pooledDrafts = new double[Buckets];
        var pooledRate = new double[Buckets];
        for (var b = 0; b < Buckets; b++)
        {
            double n = 0, a = 0;
            for (var d = 0; d < MaxDepth; d++) (n, a) = (n + _drafts[d, b], a + _accepted[d, b]);
            const double prior = 2;
            pooledRate[b] = (a + prior * (b + 0.5) / Buckets) / (n + prior);
            pooledDrafts[b] = n + 1.0 / Buckets;
        }
        var pooledTotal = pooledDrafts.Sum();

        var counts = new double[gamma];
        double reach = 1, chain = 1, accepted = 0;
        for (var depth = 1; depth <= gamma; depth++)
        {
            var d = Math.Min(depth, MaxDepth) - 1;
            var total = Enumerable.Range(0, Buckets).Sum(b => _drafts[d, b]);
            const double strength = 4;
            double acceptAll = 0, acceptKept = 0, kept = 0;
            for (var b = 0; b < Buckets; b++)
            {
                var share = (_drafts[d, b] + strength * pooledDrafts[b] / pooledTotal) / (total + strength);
                var rate = (_accepted[d, b] + strength * pooledRate[b]) / (_drafts[d, b] + strength);
                acceptAll += share * rate;
                if (b < firstKept) continue;
                acceptKept += share * rate;
                kept += share;
            }
            accepted += chain * acceptAll;       // drafts 1..depth-1 accepted and confident, this one accepted
            chain *= acceptKept;
            var stop = depth == gamma ? 1 : 1 - kept;
            counts[depth - 1] = reach * stop;
            reach *= kept;
        }
        return new RoundForecast(1 + accepted, counts);
    }

    /// <summary>Decodes each sequence's continuation greedily from its first tokens (an eighth of it,
    /// 1 to 8 tokens) with <paramref name="head"/> drafting at <paramref name="exitLayer"/>, every round
    /// drafting <see cref="MaxDepth"/> tokens so that every depth is seen, and counts the drafts.</summary>
    public static AcceptanceStatistics Measure(LlamaModel model, DraftHead head, int exitLayer, IEnumerable<int[]> sequences)
    {
        var statistics = new AcceptanceStatistics();
        var decoder = new SelfSpeculativeDecoder(model, head, new SpeculationOptions(exitLayer, MaxDepth, Threshold: 0f), statistics);
        foreach (var sequence in sequences.Where(s => s.Length >= 2))
        {
            var prompt = sequence[..Math.Clamp(sequence.Length / 8, 1, 8)];
            foreach (var _ in decoder.Generate(prompt, sequence.Length - prompt.Length, new SamplingOptions()))
            {
            }
        }
        return statistics;
    }

    /// <summary>The counts as JSON, as stored in an adapter's metadata.</summary>
    public string ToJson() => JsonSerializer.Serialize(new
    {
        buckets = Buckets,
        drafts = Rows(_drafts),
        accepted = Rows(_accepted),
    });

    private static double[][] Rows(double[,] table) =>
        Enumerable.Range(0, MaxDepth).Select(d => Enumerable.Range(0, Buckets).Select(b => Math.Round(table[d, b], 2)).ToArray()).ToArray();

    /// <summary>Reads <see cref="ToJson"/>'s form; the message of a malformed one names <paramref name="source"/>.</summary>
    public static AcceptanceStatistics FromJson(string json, string source)
    {
        var statistics = new AcceptanceStatistics();
        try
        {
            using var document = JsonText.Parse(json);
            var root = document.RootElement;
            if (root.GetProperty("buckets").GetInt32() != Buckets)
                throw new ModelFormatException($"{source}: {MetadataKey} has {root.GetProperty("buckets")} confidence buckets, expected {Buckets}");
            Fill(root.GetProperty("drafts"), statistics._drafts);
            Fill(root.GetProperty("accepted"), statistics._accepted);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or IndexOutOfRangeException)
        {
            throw new ModelFormatException($"{source}: {MetadataKey} is malformed ({ErrorText.Of(e)})");
        }
        for (var d = 0; d < MaxDepth; d++)
            for (var b = 0; b < Buckets; b++)
                if (!(statistics._accepted[d, b] >= 0 && statistics._accepted[d, b] <= statistics._drafts[d, b]) || !double.IsFinite(statistics._drafts[d, b]))
                    throw new ModelFormatException($"{source}: {MetadataKey} counts are inconsistent at depth {d + 1}, bucket {b}");
        return statistics;

        void Fill(JsonElement rows, double[,] table)
        {
            var d = 0;
            foreach (var row in rows.EnumerateArray().Take(MaxDepth))
            {
                var b = 0;
                foreach (var value in row.EnumerateArray().Take(Buckets)) table[d, b++] = value.GetDouble();
                if (b != Buckets) throw new FormatException($"depth {d + 1} has {b} buckets");
                d++;
            }
        }
    }
}
