using System.Diagnostics;
using Spectre.Console;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo bench</c>: prefill speed, then each decoder over the same prompts, on one
/// device in one process, with speedups against autoregressive decoding measured side by side.</summary>
internal static class BenchCommand
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
        var promptFile = new Option<string>("--prompt-file") { Description = "prompts: a text file (one per line) or JSONL with \"text\", \"turns\" or \"prompt_ids\" (a golden file: ids, and \"max_new\" or \"steps\" bound the tokens) (default: built-in story openings)" };
        var prompts = new Option<int>("--prompts") { Description = "number of prompts to use", DefaultValueFactory = _ => 8 };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "most new tokens per prompt", DefaultValueFactory = _ => 256 };
        var json = new Option<bool>("--json") { Description = "print the results as JSON" };
        var costs = new Option<bool>("--costs") { Description = "time the parts of a speculative round (autoregressive step, draft step, verification of 1..gamma+1 rows) instead" };
        var draftVocab = new Option<int?>("--draft-vocab") { Description = "with --costs: time a draft head over K tokens of the vocabulary" };
        var acceptanceFrom = new Option<string>("--acceptance-from") { Description = "with --costs: plan with the held-out acceptance of this adapter (of any model)" };
        var specBench = new Option<string>("--spec-bench") { Description = "Spec-Bench's question.jsonl: answer its questions through the chat template instead (default decoders: kangaroo)" };
        var answerFile = new Option<string>("--answer-file") { Description = "with --spec-bench: Spec-Bench answers are written to FILE with each decoder's name before the extension" };
        var questions = new Option<int?>("--questions") { Description = "with --spec-bench: the first N questions only" };
        var chatArguments = new ChatArguments(withSystem: false);
        var speculation = new SpeculationArguments(withDecoder: false);
        var command = new Command("bench", "Measure prefill and decode speed of autoregressive and speculative decoding side by side")
        {
            decoders, promptFile, prompts, maxNew, json, costs, draftVocab, acceptanceFrom, specBench, answerFile, questions,
        };
        modelArguments.AddTo(command);
        speculation.AddTo(command);
        chatArguments.AddTo(command);
        command.SetAction(result => CliRunner.Guard(() =>
        {
            var specBenchPath = result.GetValue(specBench);
            foreach (var specBenchOnly in new Option[] { answerFile, questions, chatArguments.Template })
                if (specBenchPath is null && result.GetResult(specBenchOnly) is not null) throw new ArgumentException($"{specBenchOnly.Name} applies to --spec-bench only");
            if (specBenchPath is not null && result.GetValue(answerFile) is null) throw new ArgumentException("--spec-bench needs --answer-file FILE");
            if (result.GetValue(questions) is < 1) throw new ArgumentException($"--questions {result.GetValue(questions)} must be >= 1");
            using var session = modelArguments.Open(result);
            if (result.GetValue(costs))
            {
                CostsCommand.Run(session, result.GetValue(speculation.Adapter), result.GetValue(speculation.ExitLayer), result.GetValue(speculation.DraftSteps),
                    result.GetValue(draftVocab), result.GetValue(acceptanceFrom), result.GetValue(json));
                return 0;
            }
            if (result.GetValue(draftVocab) is not null) throw new ArgumentException("--draft-vocab applies to --costs only (a trained adapter carries its own draft vocabulary)");
            if (result.GetValue(acceptanceFrom) is not null) throw new ArgumentException("--acceptance-from applies to --costs only");
            if (specBenchPath is not null)
            {
                var questionList = SpecBench.Load(specBenchPath).Take(result.GetValue(questions) ?? int.MaxValue).ToList();
                var template = chatArguments.Load(result, session);
                var compared = result.GetResult(decoders) is { Implicit: false } ? result.GetValue(decoders)! : "kangaroo";
                var specDecoders = DecoderNames(compared).Select(n => speculation.CreateDecoder(session, n, result)).ToList();
                var specResults = SpecBench.Run(session, template, specDecoders, questionList, result.GetValue(maxNew), result.GetValue(answerFile)!);
                if (result.GetValue(json)) Console.WriteLine(JsonSerializer.Serialize(new { device = session.Device.Kind, device_name = session.Device.Name, results = specResults }));
                else SpecBench.Print(session, specResults);
                return 0;
            }
            var promptList = LoadPrompts(result.GetValue(promptFile)).Take(result.GetValue(prompts))
                .Select(p => (Ids: p.Ids ?? session.EncodePrompt(p.Text!), MaxNew: Math.Min(result.GetValue(maxNew), p.MaxNewTokens ?? int.MaxValue))).ToList();
            var prefill = MeasurePrefill(session);
            var created = DecoderNames(result.GetValue(decoders)!).Select(n => speculation.CreateDecoder(session, n, result)).ToList();
            var results = Compare(session, created, promptList);
            var controllers = created.OfType<SelfSpeculativeDecoder>().Where(d => d.Controller is not null).ToList();
            if (result.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(new { device = session.Device.Kind, device_name = session.Device.Name, weight_bytes = session.Model.Weights.Bytes,
                    weight_bytes_by_type = WeightBytesByType(session),
                    device_bytes = session.Device.AllocatedBytes, borrowed_bytes = session.Device.BorrowedBytes, prefill_tokens_per_second = prefill, results,
                    auto = controllers.Select(d => new { plan = d.Controller!.Plan, costs = d.Controller.Costs, fallbacks = d.Controller.Fallbacks }).FirstOrDefault() }));
            }
            else
            {
                Print(session, prefill, results, promptList.Count);
                foreach (var d in controllers)
                    AnsiConsole.MarkupLine(Markup.Escape($"{d.Name}: {d.Controller!.Plan.Describe()}; fell back to autoregressive {d.Controller.Fallbacks} times during generation"));
            }
            return 0;
        }));
        return command;
    }

    /// <summary>autoregressive, the baseline, then the comma-separated decoders compared with it.</summary>
    private static List<string> DecoderNames(string list) =>
        new[] { "autoregressive" }.Concat(list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Where(n => n != "autoregressive")).ToList();

    private static IEnumerable<Prompt> LoadPrompts(string? path) => path is null ? StoryPrompts.Select(p => new Prompt(p)) : PromptFile.Read(path);

    /// <summary>Prefill tokens per second over a prompt of half the context (at most 256 tokens): the
    /// passes that put the prompt's positions in the cache before the first token is decoded.</summary>
    private static double MeasurePrefill(InferenceSession session)
    {
        var model = session.Model;
        var count = Math.Min(256, model.Context / 2);
        var tokens = Enumerable.Range(0, count + 1).Select(i => (i * 7919 + 3) % model.Config.VocabSize).ToArray();
        using var decoder = new AutoregressiveDecoder(model);
        void Prefill()
        {
            using var generation = decoder.Start(tokens, 1, new SamplingOptions());
            while (!generation.Prefilled) decoder.Step(generation);
        }
        Prefill(); // warm-up
        model.Device.Synchronize();
        var clock = Stopwatch.StartNew();
        const int repeats = 3;
        for (var i = 0; i < repeats; i++) Prefill();
        model.Device.Synchronize();
        return repeats * count / clock.Elapsed.TotalSeconds;
    }

    /// <summary>Runs every decoder on every prompt and compares tokens per second with the first
    /// decoder, per prompt, then averaged over prompts. Before that, the decoders take turns on a short
    /// generation for at least a second, so that every decoder is timed in fully optimised code: the
    /// runtime recompiles hot methods only after their first 30 calls and a 100 ms delay.</summary>
    public static List<DecoderResult> Compare(InferenceSession session, List<Decoder> decoders, List<(int[] Ids, int MaxNew)> prompts)
    {
        var greedy = new SamplingOptions();
        var warmUp = Stopwatch.StartNew();
        do
            foreach (var decoder in decoders) _ = decoder.Generate(prompts[0].Ids, Math.Min(prompts[0].MaxNew, 16), greedy).ToList();
        while (warmUp.Elapsed < TimeSpan.FromSeconds(1));
        var speeds = decoders.Select(_ => new List<double>()).ToArray();
        var outputs = decoders.Select(_ => new List<int[]>()).ToArray();
        var stats = decoders.Select(_ => new List<DecoderStats>()).ToArray();
        foreach (var prompt in prompts)
        {
            for (var d = 0; d < decoders.Count; d++)
            {
                outputs[d].Add(decoders[d].Generate(prompt.Ids, prompt.MaxNew, greedy).ToArray());
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
                Enumerable.Range(1, 6).Select(w => DecoderStats.CtarOf(accept, w)).ToArray(),
                all.Sum(s => s.Draft.TotalSeconds) / decodeSeconds,
                all.Sum(s => s.Verify.TotalSeconds) / decodeSeconds,
                all.Sum(s => s.GeneratedTokens),
                outputs[d].Zip(outputs[0], (a, b) => a.SequenceEqual(b)).All(x => x));
        }).ToList();
    }

    /// <summary>The model's weight bytes per element type, largest first, under the names --weights and --dtype use.</summary>
    private static Dictionary<string, long> WeightBytesByType(InferenceSession session) =>
        session.Model.Weights.BytesByType.OrderByDescending(t => t.Value).ToDictionary(t => t.Key.ToString().ToLowerInvariant(), t => t.Value);

    private static void Print(InferenceSession session, double prefill, List<DecoderResult> results, int promptCount)
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
        AnsiConsole.MarkupLine($"[bold]device[/] {Markup.Escape(session.Device.Kind)} ({Markup.Escape(session.Device.Name)})");
        var byType = string.Join(", ", WeightBytesByType(session).Select(t => $"{t.Key} {t.Value / 1e6:F1} MB"));
        AnsiConsole.MarkupLine($"[bold]model[/] {Markup.Escape(session.ModelPath)}: {session.Model.Weights.Bytes / 1e6:F1} MB of weights ({byType}), {session.Device.AllocatedBytes / 1e6:F1} MB on the device, {session.Device.BorrowedBytes / 1e6:F1} MB read in place from the model file");
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
