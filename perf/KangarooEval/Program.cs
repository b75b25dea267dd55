// kangaroo-eval: greedy Kangaroo decoding with one or more adapters on the golden prompts, against
// autoregressive decoding of the same model in the same process. Prints, per adapter, compression
// rate (mean tokens committed per verification round, bonus included, pooled over all rounds),
// CTAR(1..6), decode tokens/s of both decoders and the speedup (per prompt, then averaged over
// prompts, as Spec-Bench does), and checks that every output equals autoregressive decoding.
//
//   dotnet run -c Release --project perf/KangarooEval -- --golden ../shared/golden/stories260K-greedy.jsonl \
//       [--model models/stories260K/stories260K.bin] [--device cpu] [--gamma 6] [--eta 0.6] [--repeats 3] adapter.safetensors...
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;

CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
string model = "models/stories260K/stories260K.bin", device = "cpu", golden = "";
int gamma = 6, repeats = 3;
float eta = 0.6f;
var adapters = new List<string>();
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--model": model = args[++i]; break;
        case "--device": device = args[++i]; break;
        case "--golden": golden = args[++i]; break;
        case "--gamma": gamma = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--eta": eta = float.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--repeats": repeats = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default: adapters.Add(args[i]); break;
    }
}
if (golden.Length == 0 || adapters.Count == 0)
{
    Console.Error.WriteLine("usage: kangaroo-eval --golden FILE.jsonl [--model M] [--device D] [--gamma G] [--eta E] [--repeats R] ADAPTER...");
    return 1;
}

var cases = File.ReadLines(golden).Where(l => l.Trim().Length > 0).Select(line =>
{
    var json = JsonDocument.Parse(line).RootElement;
    int[] Ids(string name) => json.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
    var prompt = Ids("prompt_ids");
    // llama2.c goldens count run.c's steps; Hugging Face goldens give the most new tokens.
    var maxNew = json.TryGetProperty("max_new", out var max) ? max.GetInt32() : json.GetProperty("steps").GetInt32() - prompt.Length + 1;
    return (Prompt: prompt, Expected: Ids("generated_ids"), MaxNew: maxNew);
}).ToList();

using var session = InferenceSession.Open(model, device);
var greedy = new SamplingOptions();

// Decode tokens/s of one generation, best of `repeats` runs (the first run also warms the JIT).
(int[] Tokens, DecoderStats Stats, double TokensPerSecond) Run(Decoder decoder, int[] prompt, int maxNew)
{
    int[] tokens = [];
    var best = 0.0;
    DecoderStats stats = decoder.Stats;
    for (var r = 0; r < repeats; r++)
    {
        tokens = decoder.Generate(prompt, maxNew, greedy).ToArray();
        stats = decoder.Stats;
        best = Math.Max(best, stats.DecodeTokensPerSecond);
    }
    return (tokens, stats, best);
}

var autoregressive = session.CreateDecoder("autoregressive");
foreach (var c in cases) Run(autoregressive, c.Prompt, c.MaxNew); // warm-up
Console.WriteLine($"device {session.Device.Kind} ({session.Device.Name}), gamma {gamma}, eta {eta}, {cases.Count} prompts, best of {repeats} runs");
Console.WriteLine("| adapter | exit layer | CR | CTAR(1..6) | kangaroo tok/s | autoregressive tok/s | speedup | identical |");
Console.WriteLine("|---|---|---|---|---|---|---|---|");
foreach (var adapter in adapters)
{
    var kangaroo = session.CreateDecoder("kangaroo", adapter, draftSteps: gamma, threshold: eta);
    var rounds = new List<int>();
    var speedups = new List<double>();
    double kTps = 0, aTps = 0;
    var identical = true;
    foreach (var c in cases)
    {
        var a = Run(autoregressive, c.Prompt, c.MaxNew);
        var k = Run(kangaroo, c.Prompt, c.MaxNew);
        identical &= a.Tokens.SequenceEqual(k.Tokens) && a.Tokens.SequenceEqual(c.Expected);
        rounds.AddRange(k.Stats.AcceptLengths);
        speedups.Add(k.TokensPerSecond / a.TokensPerSecond);
        kTps += k.TokensPerSecond / cases.Count;
        aTps += a.TokensPerSecond / cases.Count;
    }
    var layer = ((Kangaroo.Native.Engine.Kangaroo.SelfSpeculativeDecoder)kangaroo).Options.ExitLayer;
    var ctar = string.Join(" / ", Enumerable.Range(1, 6).Select(w => (rounds.Count(n => n > w) / (double)rounds.Count).ToString("F2")));
    Console.WriteLine($"| {Path.GetFileName(adapter)} | {layer} | {rounds.Average():F3} | {ctar} | {kTps:F0} | {aTps:F0} | {speedups.Average():F2}x | {(identical ? "yes" : "NO")} |");
}
return 0;
