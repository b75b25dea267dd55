using System.Diagnostics;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;

namespace Kangaroo.Native.Perf;

/// <summary>
/// Aggregate decode throughput of N generations stepped together (<see cref="AutoregressiveBatch"/>, what
/// `kangaroo serve --parallel N` runs under load), for each N asked. Each round starts N greedy generations
/// from the prompts below (our own, not a test's), prefills them untimed, then times the steps until each
/// has made its tokens. Memory-bound shapes should give close to N times one stream: a step reads the
/// weights once for all its rows.
/// </summary>
public static class BatchThroughput
{
    private static readonly string[] Prompts =
    [
        "Once upon a time, a girl named Mia", "The big red ball rolled", "Tom had a small boat", "One day, the sun was hot and",
        "A cat sat on the wall and", "The park was full of", "Ben liked to paint", "Under the old tree there was",
    ];

    public static void Run(string modelPath, string deviceName, Numerics.ElementType? weights, int[] streams, int tokens, int rounds, Action<string> log)
    {
        using var session = InferenceSession.Open(modelPath, deviceName, weights: weights, context: 512, sequences: streams.Max());
        using var decoder = new AutoregressiveDecoder(session.Model);
        using var batch = new AutoregressiveBatch(session.Model);
        var prompts = Prompts.Select(session.EncodePrompt).ToArray();
        log($"batch throughput: {Path.GetFileName(modelPath)}{(weights is { } w ? $" --weights {w}" : "")} on {session.Device.Kind}, {tokens} tokens per stream, " +
            $"best of {rounds} round(s); load {Measure.LoadAverage():F1}");
        log("| streams | tokens | s | aggregate tok/s | tok/s per stream | x one stream |");
        log("| --- | --- | --- | --- | --- | --- |");
        Round(decoder, batch, prompts, streams.Max(), Math.Min(tokens, 8)); // warm-up: compiles every path once
        double? one = null;
        foreach (var n in streams)
        {
            var best = Enumerable.Range(0, rounds).Select(_ => Round(decoder, batch, prompts, n, tokens)).MaxBy(r => r.TokensPerSecond);
            one ??= best.TokensPerSecond / n;
            log($"| {n} | {best.Tokens} | {best.Seconds:F2} | {best.TokensPerSecond:F1} | {best.TokensPerSecond / n:F1} | {best.TokensPerSecond / one:F2} |");
        }
        log($"load after: {Measure.LoadAverage():F1}");
    }

    private static (int Tokens, double Seconds, double TokensPerSecond) Round(Decoder decoder, AutoregressiveBatch batch, int[][] prompts, int n, int tokens)
    {
        var generations = Enumerable.Range(0, n).Select(i => decoder.Start(prompts[i % prompts.Length], tokens, new SamplingOptions())).ToList();
        try
        {
            while (generations.Any(g => !g.Prefilled)) batch.Step(generations);
            var before = generations.Sum(g => g.Produced);
            var clock = Stopwatch.StartNew();
            for (var active = generations.Where(g => !g.Finished).ToList(); active.Count > 0; active.RemoveAll(g => g.Finished))
                batch.Step(active);
            var seconds = clock.Elapsed.TotalSeconds;
            var made = generations.Sum(g => g.Produced) - before;
            return (made, seconds, made / seconds);
        }
        finally
        {
            foreach (var g in generations) g.Dispose();
        }
    }
}
