using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;
using Spectre.Console;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo bench</c>: prefill speed, then each decoder over the same prompts, on one
/// device in one process, with speedups against autoregressive decoding measured side by side.</summary>
public static class BenchCommand
{
    /// <summary>Story openings for the embedded TinyStories model.</summary>
    private static readonly string[] StoryPrompts =
    [
        "Once upon a time", "One day, a little girl named Lily", "Tom and his dog", "The sun was shining and",
        "There was a big red ball", "Sam wanted to play", "In a small house", "The little bird",
    ];

    public sealed record DecoderResult(string Decoder, double TokensPerSecond, double Speedup, double CompressionRate,
        double[] Ctar, double DraftShare, double VerifyShare, int Tokens, bool IdenticalToAutoregressive);

    public static Command Create()
    {
        var modelArguments = new ModelArguments(withTokenizer: false);
        var decoders = new Option<string>("--decoders") { Description = "comma-separated decoders to compare with autoregressive", DefaultValueFactory = _ => "auto,kangaroo,early-exit" };
        var promptFile = new Option<string>("--prompt-file") { Description = "prompts: a text file (one per line) or JSONL with \"text\" or \"turns\" (default: built-in story openings)" };
        var prompts = new Option<int>("--prompts") { Description = "number of prompts to use", DefaultValueFactory = _ => 8 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens per prompt", DefaultValueFactory = _ => 256 };
        var json = new Option<bool>("--json") { Description = "print the results as JSON" };
        var costs = new Option<bool>("--costs") { Description = "time the parts of a speculative round (autoregressive step, draft step, verification of 1..gamma+1 rows) instead" };
        var draftVocab = new Option<int?>("--draft-vocab") { Description = "with --costs: time a draft head over K tokens of the vocabulary" };
        var speculation = new SpeculationArguments();
        var command = new Command("bench", "Measure prefill and decode speed of autoregressive and speculative decoding side by side")
        {
            decoders, promptFile, prompts, maxNew, json, costs, draftVocab,
        };
        modelArguments.AddTo(command);
        speculation.AddTo(command);
        command.SetAction(result => CliRunner.Guard(() =>
        {
            using var session = modelArguments.Open(result);
            if (result.GetValue(costs))
            {
                CostsCommand.Run(session, result.GetValue(speculation.Adapter), result.GetValue(speculation.ExitLayer), result.GetValue(speculation.DraftSteps),
                    result.GetValue(draftVocab), result.GetValue(json));
                return 0;
            }
            if (result.GetValue(draftVocab) is not null) throw new ArgumentException("--draft-vocab applies to --costs only (a trained adapter carries its own draft vocabulary)");
            var texts = LoadPrompts(result.GetValue(promptFile)).Take(result.GetValue(prompts)).ToList();
            var ids = texts.Select(session.EncodePrompt).ToList();
            var names = new[] { "autoregressive" }.Concat(result.GetValue(decoders)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(n => n != "autoregressive")).ToList();
            var prefill = MeasurePrefill(session);
            var created = names.Select(n => speculation.CreateDecoder(session, n, result)).ToList();
            var results = Compare(session, created, ids, result.GetValue(maxNew));
            var controllers = created.OfType<SelfSpeculativeDecoder>().Where(d => d.Controller is not null).ToList();
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { device = session.Device.Kind, device_name = session.Device.Name, weight_bytes = session.Model.WeightBytes,
                    weight_bytes_by_type = WeightBytesByType(session),
                    device_bytes = session.Device.AllocatedBytes, prefill_tokens_per_second = prefill, results,
                    auto = controllers.Select(d => new { plan = d.Controller!.Plan, costs = d.Controller.Costs, fallbacks = d.Controller.Fallbacks }).FirstOrDefault() }));
            }
            else
            {
                Print(session, prefill, results, ids.Count);
                foreach (var d in controllers)
                    AnsiConsole.MarkupLine(Markup.Escape($"{d.Name}: {d.Controller!.Plan.Describe()}; fell back to autoregressive {d.Controller.Fallbacks} times during generation"));
            }
            return 0;
        }));
        return command;
    }

    public static IEnumerable<string> LoadPrompts(string? path)
    {
        if (path is null) return StoryPrompts;
        if (!File.Exists(path)) throw new ArgumentException($"--prompt-file {path}: file not found");
        var lines = File.ReadLines(path).Where(l => l.Trim().Length > 0).ToList();
        if (lines.Count == 0) throw new ArgumentException($"--prompt-file {path}: no prompts in the file");
        return lines.Select(line =>
        {
            if (!line.TrimStart().StartsWith('{')) return line;
            using var doc = JsonDocument.Parse(line);
            var root = doc.RootElement;
            if (root.TryGetProperty("turns", out var turns)) return turns[0].GetString() ?? "";
            if (root.TryGetProperty("text", out var text)) return text.GetString() ?? "";
            throw new ArgumentException($"--prompt-file {path}: a JSON line has neither \"turns\" nor \"text\"");
        });
    }

    /// <summary>Prefill tokens per second over a prompt of half the context (at most 256 tokens).</summary>
    private static double MeasurePrefill(InferenceSession session)
    {
        var model = session.Model;
        var count = Math.Min(256, model.Context / 2);
        var tokens = Enumerable.Range(0, count).Select(i => (i * 7919 + 3) % model.Config.VocabSize).ToArray();
        using var residual = model.AllocateResidual(LlamaModel.MaxBlockRows);
        model.Cache.Truncate(0);
        model.Prefill(tokens, count, residual); // warm-up
        model.Device.Synchronize();
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (var i = 0; i < repeats; i++)
        {
            model.Cache.Truncate(0);
            model.Prefill(tokens, count, residual);
        }
        model.Device.Synchronize();
        return repeats * count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Runs every decoder on every prompt (after one warm-up generation each) and compares
    /// tokens per second with the first decoder, per prompt, then averaged over prompts.</summary>
    public static List<DecoderResult> Compare(InferenceSession session, List<Decoder> decoders, List<int[]> prompts, int maxNew)
    {
        var greedy = new SamplingOptions();
        foreach (var decoder in decoders) _ = decoder.Generate(prompts[0], Math.Min(maxNew, 16), greedy).ToList();
        var speeds = decoders.Select(_ => new List<double>()).ToArray();
        var outputs = decoders.Select(_ => new List<int[]>()).ToArray();
        var stats = decoders.Select(_ => new List<DecoderStats>()).ToArray();
        foreach (var prompt in prompts)
        {
            for (var d = 0; d < decoders.Count; d++)
            {
                outputs[d].Add(decoders[d].Generate(prompt, maxNew, greedy).ToArray());
                session.Device.Synchronize();
                stats[d].Add(decoders[d].Stats);
                speeds[d].Add(decoders[d].Stats.DecodeTokensPerSecond);
            }
        }
        return decoders.Select((decoder, d) =>
        {
            var all = stats[d];
            var accept = all.SelectMany(s => s.AcceptLengths).ToList();
            var decodeSeconds = all.Sum(s => (s.Total - s.Prefill).TotalSeconds);
            return new DecoderResult(
                decoder.Name,
                all.Sum(s => s.GeneratedTokens) / decodeSeconds,
                speeds[d].Zip(speeds[0], (mine, baseline) => mine / baseline).Average(),
                accept.Average(),
                Enumerable.Range(1, 6).Select(w => accept.Count(n => n > w) / (double)accept.Count).ToArray(),
                all.Sum(s => s.Draft.TotalSeconds) / decodeSeconds,
                all.Sum(s => s.Verify.TotalSeconds) / decodeSeconds,
                all.Sum(s => s.GeneratedTokens),
                outputs[d].Zip(outputs[0], (a, b) => a.SequenceEqual(b)).All(x => x));
        }).ToList();
    }

    /// <summary>The model's weight bytes per element type, largest first, under the names --weights and --dtype use.</summary>
    private static Dictionary<string, long> WeightBytesByType(InferenceSession session) =>
        session.Model.WeightBytesByType.OrderByDescending(t => t.Value).ToDictionary(t => t.Key.ToString().ToLowerInvariant(), t => t.Value);

    private static void Print(InferenceSession session, double prefill, List<DecoderResult> results, int promptCount)
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
        AnsiConsole.MarkupLine($"[bold]device[/] {Markup.Escape(session.Device.Kind)} ({Markup.Escape(session.Device.Name)})");
        var byType = string.Join(", ", WeightBytesByType(session).Select(t => $"{t.Key} {t.Value / 1e6:F1} MB"));
        AnsiConsole.MarkupLine($"[bold]model[/] {Markup.Escape(session.ModelPath)}: {session.Model.WeightBytes / 1e6:F1} MB of weights ({byType}), {session.Device.AllocatedBytes / 1e6:F1} MB on the device");
        AnsiConsole.MarkupLine($"[bold]prefill[/] {prefill:F0} tokens/s");
        var table = new Table().AddColumns("decoder", "decode tok/s", "speedup", "compression", "CTAR 1..6", "draft", "verify", "other", "tokens", "same output");
        foreach (var r in results)
        {
            table.AddRow(r.Decoder, $"{r.TokensPerSecond:F1}", $"{r.Speedup:F2}x", $"{r.CompressionRate:F2}",
                string.Join(" ", r.Ctar.Select(c => c.ToString("F2"))), $"{r.DraftShare:P0}", $"{r.VerifyShare:P0}",
                $"{Math.Max(0, 1 - r.DraftShare - r.VerifyShare):P0}", $"{r.Tokens}", r.IdenticalToAutoregressive ? "yes" : "[red]NO[/]");
        }
        AnsiConsole.Write(table);
        AnsiConsole.MarkupLine($"greedy, {promptCount} prompts; speedup = decode tokens/s over autoregressive's, per prompt, averaged.");
    }
}
