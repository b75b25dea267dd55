using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Kangaroo.Native.Perf;

/// <summary>One engine as <c>perf/vs-llamacpp.sh</c> measures it. This file is compiled into both
/// <c>kangaroo-perf vs-llamacpp</c> (our engine) and <c>llamacpp-peer run</c> (llama.cpp), so both
/// take the same arguments and are timed by the same code.</summary>
public interface ISideBySideEngine : IDisposable
{
    int VocabSize { get; }

    /// <summary>Greedy generation of <paramref name="tokens"/> tokens after <paramref name="prompt"/> on
    /// an empty KV cache; <paramref name="firstToken"/> runs once the first token is known. Returns the
    /// tokens (fewer if the engine stops at EOS) and the seconds from the forward pass of the prompt's
    /// last token to the last token: the prompt's other tokens are one prefill batch, not timed.</summary>
    (int[] Ids, double DecodeSeconds) Generate(int[] prompt, int tokens, Action firstToken);

    /// <summary>Fills an emptied KV cache with <paramref name="tokens"/> as one batch, without logits.</summary>
    void Prefill(int[] tokens);
}

public sealed record SideBySideArguments(string Model, int[] PromptIds, int Tokens, int Prefill, int Threads, int Context)
{
    public const string Usage = "--model FILE.gguf --prompt-ids 1,2,3 [--tokens 64] [--prefill 256] [--threads all cores] [--context 512]";

    public static SideBySideArguments Parse(IReadOnlyList<string> args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Count; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{args[i]}' ({Usage})");
            values[args[i][2..]] = args[i + 1];
        }
        if (args.Count % 2 != 0) throw new ArgumentException($"'{args[^1]}' has no value ({Usage})");
        int Int(string name, int fallback) => values.Remove(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        string Required(string name) => values.Remove(name, out var v) ? v : throw new ArgumentException($"--{name} is required ({Usage})");
        var parsed = new SideBySideArguments(Required("model"),
            Required("prompt-ids").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray(),
            Int("tokens", 64), Int("prefill", 256), Int("threads", Environment.ProcessorCount), Int("context", 512));
        if (values.Count > 0) throw new ArgumentException($"unknown option --{values.Keys.First()} ({Usage})");
        if (parsed.Tokens < 1 || parsed.Prefill < 1 || parsed.Threads < 1) throw new ArgumentException("--tokens, --prefill and --threads must be >= 1");
        if (parsed.PromptIds.Length + parsed.Tokens > parsed.Context || parsed.Prefill > parsed.Context)
            throw new ArgumentException($"--context {parsed.Context} holds neither the prompt and --tokens nor --prefill");
        return parsed;
    }
}

public static class SideBySide
{
    /// <summary>Opens the engine, then measures: a first generation (its ids, and the time from process
    /// start to its first token), then more as warm-up until a second has passed since it began,
    /// generations timed until a second of decoding (at least one), and prefill as <c>kangaroo bench</c> times it (ids
    /// (i * 7919 + 3) mod vocabulary, one warm-up, three timed batches on an emptied cache). Prints
    /// one JSON object; the peak resident memory is the process's VmHWM at the end.</summary>
    public static int Run(string engineName, SideBySideArguments a, Func<ISideBySideEngine> open, Func<ISideBySideEngine, string> describe)
    {
        var started = Process.GetCurrentProcess().StartTime;
        var load = Stopwatch.StartNew();
        using var engine = open();
        var loadSeconds = load.Elapsed.TotalSeconds;

        var firstToken = double.NaN;
        var warmUp = Stopwatch.StartNew();
        var (ids, _) = engine.Generate(a.PromptIds, a.Tokens, () => firstToken = (DateTime.Now - started).TotalSeconds);
        while (warmUp.Elapsed.TotalSeconds < 1) engine.Generate(a.PromptIds, a.Tokens, () => { });
        var decodeSeconds = 0.0;
        var decoded = 0;
        while (decoded == 0 || decodeSeconds < 1)
        {
            var (timed, seconds) = engine.Generate(a.PromptIds, a.Tokens, () => { });
            decodeSeconds += seconds;
            decoded += timed.Length;
        }

        var prefill = Enumerable.Range(0, a.Prefill).Select(i => (i * 7919 + 3) % engine.VocabSize).ToArray();
        engine.Prefill(prefill);
        const int repeats = 3;
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < repeats; i++) engine.Prefill(prefill);
        var prefillSeconds = clock.Elapsed.TotalSeconds;

        var result = new Result(engineName, describe(engine), a.Model, a.Threads, a.Context, a.PromptIds, ids,
            Math.Round(firstToken * 1e3, 1), Math.Round(loadSeconds * 1e3, 1), ids.Length, Math.Round(decoded / decodeSeconds, 2),
            a.Prefill, Math.Round(repeats * a.Prefill / prefillSeconds, 2), Math.Round(PeakResidentBytes() / 1e6, 1));
        Console.WriteLine(JsonSerializer.Serialize(result, ResultJson.Default.Result));
        return 0;
    }

    /// <summary>VmHWM of /proc/self/status: the most resident memory the process has held.</summary>
    private static long PeakResidentBytes()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    public sealed record Result(string Engine, string Detail, string Model, int Threads, int Context, int[] PromptIds, int[] GeneratedIds,
        double FirstTokenMs, double LoadMs, int GeneratedTokens, double DecodeTokensPerSecond, int PrefillTokens, double PrefillTokensPerSecond, double PeakRssMb);
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(SideBySide.Result))]
internal sealed partial class ResultJson : JsonSerializerContext;
