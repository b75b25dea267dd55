using System.Diagnostics;
using Kangaroo.Native.Engine;

namespace Kangaroo.Native.Perf;

/// <summary>
/// Many generations back to back through the library, as a long-running program would make them:
/// every decoder, greedy and sampled, a session opened and disposed every few generations. Memory is
/// reported after the first 50 generations and at the end; what a leak would look like is growth
/// between the two (managed heap after a full collection, process private bytes, device bytes held
/// by an open session).
/// </summary>
public static class Soak
{
    private static readonly string[] Decoders = ["autoregressive", "early-exit", "kangaroo"];
    private static readonly string[] Prompts = ["Once upon a time", "The little dog", "Lily and Tom went to the park.", ""];
    public static void Run(string modelPath, string deviceName, int generations, int tokens, int generationsPerSession, Action<string> log)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(generationsPerSession, 1);
        log($"soak: {generations} generations of up to {tokens} tokens on {deviceName}, decoders {string.Join(", ", Decoders)}, " +
            $"a session per {generationsPerSession} generations; load {Measure.LoadAverage():F1}");
        log("| after | generations | sessions | tokens | managed heap (MB) | private bytes (MB) | working set (MB) | device bytes of an open session (MB) | s |");
        log("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        var clock = Stopwatch.StartNew();
        long produced = 0;
        var sessions = 0;
        for (var done = 0; done < generations;)
        {
            using var session = InferenceSession.Open(modelPath, deviceName);
            sessions++;
            for (var i = 0; i < generationsPerSession && done < generations; i++, done++)
            {
                var name = Decoders[done % Decoders.Length];
                using var decoder = session.CreateDecoder(name, exitLayer: name == "early-exit" ? 2 : null);
                var sampling = done % 2 == 0 ? new SamplingOptions() : new SamplingOptions(Temperature: 1f, TopP: 0.9f, Seed: (ulong)done + 1);
                produced += decoder.Generate(session.EncodePrompt(Prompts[done % Prompts.Length]), tokens, sampling).Count();
                if (done + 1 == Math.Min(50, generations) || done + 1 == generations)
                    log(Snapshot(done + 1, sessions, produced, session.Device.AllocatedBytes, clock.Elapsed));
            }
        }
    }

    private static string Snapshot(int generations, int sessions, long tokens, long deviceBytes, TimeSpan elapsed)
    {
        var managed = GC.GetTotalMemory(forceFullCollection: true);
        using var process = Process.GetCurrentProcess();
        return $"| {generations} generations | {generations} | {sessions} | {tokens} | {managed / 1e6:F1} | {process.PrivateMemorySize64 / 1e6:F1} | " +
               $"{process.WorkingSet64 / 1e6:F1} | {deviceBytes / 1e6:F2} | {elapsed.TotalSeconds:F1} |";
    }
}
