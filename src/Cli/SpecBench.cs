using System.Globalization;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Chat;
using Kangaroo.Native.Templates;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Loader;
using Spectre.Console;

namespace Kangaroo.Native.Cli;

/// <summary>
/// <c>kangaroo bench --spec-bench</c>: Spec-Bench's questions through the chat template, greedy, answered by
/// autoregressive decoding and by each compared decoder (MT-bench's two-turn questions with the first reply in
/// the second turn's prompt). Writes Spec-Bench's answer file per decoder and prints speedup, compression rate
/// and CTAR per task and overall, as the Kangaroo paper's table.
/// </summary>
internal static class SpecBench
{
    /// <summary>Spec-Bench's tasks in the paper's order; MT-bench's eight categories are one task.</summary>
    private static readonly string[] Tasks = ["mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag"];

    public sealed record Question(int Id, string Category, string[] Turns)
    {
        public string Task => Array.IndexOf(Tasks, Category) > 0 ? Category : "mt_bench";
    }

    /// <summary>One turn's reply and what it cost, as Spec-Bench records it; <c>DroppedTokens</c> were cut from
    /// the start of a prompt longer than the context allows.</summary>
    public sealed record Turn(string Text, int DecodingSteps, int NewTokens, double WallTime, List<int> AcceptLengths, int DroppedTokens);

    public sealed record Answer(Question Question, List<Turn> Turns)
    {
        /// <summary>Spec-Bench's speed of a question: its new tokens over its wall time, turns together.</summary>
        public double TokensPerSecond => Turns.Sum(t => t.NewTokens) / Math.Max(1e-9, Turns.Sum(t => t.WallTime));
    }

    /// <summary>One decoder's results on one task.</summary>
    /// <param name="Task">the Spec-Bench task.</param>
    /// <param name="Questions">how many questions of the task were answered.</param>
    /// <param name="BaselineTokensPerSecond">the autoregressive baseline's mean tokens/s on those questions.</param>
    /// <param name="TokensPerSecond">this decoder's mean tokens/s on them.</param>
    /// <param name="Speedup">per question over the baseline's, averaged (docs/kangaroo.md, "Metrics").</param>
    /// <param name="SpeedRatio">mean tokens/s over the baseline's mean, as Spec-Bench's speed.py computes its speedup; less
    /// sensitive to a few noisy questions.</param>
    /// <param name="CompressionRate">tokens committed per round, over all rounds of the task.</param>
    /// <param name="Ctar">CTAR(w) for w = 1..6 over all rounds of the task.</param>
    /// <param name="SameOutput">the share of questions answered exactly as the baseline did.</param>
    public sealed record TaskResult(string Task, int Questions, double BaselineTokensPerSecond, double TokensPerSecond, double Speedup,
        double SpeedRatio, double CompressionRate, double[] Ctar, double SameOutput);

    /// <summary>One decoder's run over the questions.</summary>
    /// <param name="Decoder">the decoder's name.</param>
    /// <param name="AnswerFile">the answers file written, in Spec-Bench's format.</param>
    /// <param name="Tasks">the results per task.</param>
    /// <param name="CutPrompts">turns whose prompt was cut to fit the context.</param>
    public sealed record DecoderResult(string Decoder, string AnswerFile, List<TaskResult> Tasks, int CutPrompts);

    /// <summary>The questions of a Spec-Bench question.jsonl (question_id, category, turns).</summary>
    public static List<Question> Load(string path)
    {
        Loader.InputFile.Require(path, "--spec-bench file");
        var questions = new List<Question>();
        var number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (line.Trim().Length == 0) continue;
            try
            {
                using var document = JsonText.Parse(line);
                var root = document.RootElement;
                questions.Add(new Question(root.GetProperty("question_id").GetInt32(), root.GetProperty("category").GetString() ?? "",
                    root.GetProperty("turns").EnumerateArray().Select(t => t.GetString() ?? "").ToArray()));
            }
            catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new FormatException($"--spec-bench {path}: line {number} is not a question {{question_id, category, turns}}: {ErrorText.Of(e)}");
            }
        }
        if (questions.Count == 0) throw new FormatException($"--spec-bench {path}: no questions in the file");
        return questions;
    }

    /// <summary>The answer file of a decoder: <paramref name="answerFile"/> with the decoder's name before the extension.</summary>
    public static string AnswerFile(string answerFile, string decoder) =>
        Path.Combine(Path.GetDirectoryName(answerFile) ?? "", $"{Path.GetFileNameWithoutExtension(answerFile)}-{decoder}{Path.GetExtension(answerFile)}");

    /// <summary>Answers every question with every decoder (the first is the baseline), after one warm-up reply
    /// each, and writes the answer files.</summary>
    public static List<DecoderResult> Run(InferenceSession session, ChatTemplate template, List<Decoder> decoders, List<Question> questions,
        int maxNewTokens, string answerFile)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(answerFile))!;
        if (!Directory.Exists(directory)) throw new IOException($"--answer-file {answerFile}: directory {directory} does not exist");
        var greedy = new SamplingOptions();
        var modelName = Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(session.ModelPath));
        var answers = decoders.Select(_ => new List<Answer>()).ToArray();
        foreach (var decoder in decoders)
            _ = string.Concat(new ChatConversation(template, session.Tokenizer!, decoder).Reply(questions[0].Turns[0], Math.Min(maxNewTokens, 16), greedy));
        var progress = new ProgressLine();
        for (var q = 0; q < questions.Count; q++)
        {
            for (var d = 0; d < decoders.Count; d++)
            {
                var conversation = new ChatConversation(template, session.Tokenizer!, decoders[d]);
                var turns = questions[q].Turns.Select(turn =>
                {
                    var text = string.Concat(conversation.Reply(turn, maxNewTokens, greedy));
                    var stats = decoders[d].Stats;
                    return new Turn(text, stats.TargetForwardPasses, stats.GeneratedTokens, stats.Total.TotalSeconds, [.. stats.AcceptLengths], conversation.DroppedTokens);
                }).ToList();
                answers[d].Add(new Answer(questions[q], turns));
            }
            progress.Show(q + 1, questions.Count, $"question {q + 1}/{questions.Count}, {decoders.Count} decoders");
        }
        progress.Finish();
        return decoders.Select((decoder, d) =>
        {
            var file = AnswerFile(answerFile, decoder.Name);
            Write(file, $"{modelName}-{decoder.Name}", answers[d]);
            return new DecoderResult(decoder.Name, file, Summarise(answers[d], answers[0]), answers[d].Sum(a => a.Turns.Count(t => t.DroppedTokens > 0)));
        }).ToList();
    }

    /// <summary>Spec-Bench's answer format: one JSON object per question.</summary>
    private static void Write(string path, string modelId, List<Answer> answers)
    {
        var options = new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        using var writer = new StreamWriter(path);
        foreach (var answer in answers)
        {
            var turns = answer.Turns;
            writer.WriteLine(JsonSerializer.Serialize(new
            {
                question_id = answer.Question.Id,
                category = answer.Question.Category,
                answer_id = Guid.NewGuid().ToString("N"),
                model_id = modelId,
                choices = new[]
                {
                    new
                    {
                        index = 0,
                        turns = turns.Select(t => t.Text),
                        decoding_steps = turns.Select(t => t.DecodingSteps),
                        new_tokens = turns.Select(t => t.NewTokens),
                        wall_time = turns.Select(t => t.WallTime),
                        accept_lengths = turns.SelectMany(t => t.AcceptLengths),
                    },
                },
                tstamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0,
            }, options));
        }
    }

    /// <summary>Per task, then overall: mean tokens/s, speedup over the baseline per question averaged, compression
    /// rate and CTAR over all rounds, and the share of questions answered exactly as the baseline did.</summary>
    private static List<TaskResult> Summarise(List<Answer> answers, List<Answer> baseline)
    {
        var pairs = answers.Zip(baseline).ToList();
        TaskResult Of(string task, List<(Answer Mine, Answer Base)> group)
        {
            var accept = group.SelectMany(p => p.Mine.Turns.SelectMany(t => t.AcceptLengths)).ToList();
            var (baseSpeed, speed) = (group.Average(p => p.Base.TokensPerSecond), group.Average(p => p.Mine.TokensPerSecond));
            return new TaskResult(task, group.Count, baseSpeed, speed, group.Average(p => p.Mine.TokensPerSecond / p.Base.TokensPerSecond), speed / baseSpeed,
                accept.Count == 0 ? 0 : accept.Average(),
                Enumerable.Range(1, 6).Select(w => DecoderStats.CtarOf(accept, w)).ToArray(),
                group.Count(p => p.Mine.Turns.Select(t => t.Text).SequenceEqual(p.Base.Turns.Select(t => t.Text))) / (double)group.Count);
        }
        return Tasks.Select(task => (task, group: pairs.Where(p => p.First.Question.Task == task).ToList()))
            .Where(t => t.group.Count > 0)
            .Select(t => Of(t.task, t.group))
            .Append(Of("overall", pairs))
            .ToList();
    }

    public static void Print(InferenceSession session, List<DecoderResult> results)
    {
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 200;
        var invariant = CultureInfo.InvariantCulture;
        AnsiConsole.MarkupLine(Markup.Escape($"device {session.Device.Kind} ({session.Device.Name}); model {session.ModelPath}"));
        var tasks = results[0].Tasks.Select(t => t.Task).ToList();
        var summary = new Table().AddColumns(["decoder", .. tasks.Select(t => $"{t} ({results[0].Tasks.First(r => r.Task == t).Questions})")]);
        foreach (var r in results)
            summary.AddRow([r.Decoder, .. r.Tasks.Select(t => string.Create(invariant, $"{t.Speedup:F2}x CR {t.CompressionRate:F2}"))]);
        AnsiConsole.Write(summary);
        foreach (var r in results.Skip(1))
        {
            var detail = new Table().Title(Markup.Escape($"{r.Decoder} ({r.AnswerFile})"))
                .AddColumns("task", "questions", $"{results[0].Decoder} tok/s", $"{r.Decoder} tok/s", "speedup", "tok/s ratio", "compression", "CTAR 1..6", "same output");
            foreach (var t in r.Tasks)
                detail.AddRow(t.Task, $"{t.Questions}", t.BaselineTokensPerSecond.ToString("F1", invariant), t.TokensPerSecond.ToString("F1", invariant),
                    $"{t.Speedup.ToString("F2", invariant)}x", $"{t.SpeedRatio.ToString("F2", invariant)}x", t.CompressionRate.ToString("F2", invariant),
                    string.Join(" ", t.Ctar.Select(c => c.ToString("F2", invariant))), $"{t.SameOutput:P0}");
            AnsiConsole.Write(detail);
        }
        AnsiConsole.MarkupLine(Markup.Escape($"greedy; {results[0].Decoder} answers in {results[0].AnswerFile}. Speed of a question: its new tokens over its wall time (prefill included), " +
                                             "turns together; speedup: per question over the baseline's, averaged; tok/s ratio: of the mean speeds, as Spec-Bench's speed.py; " +
                                             "compression: tokens per target forward pass."));
        if (results[0].CutPrompts > 0)
            AnsiConsole.MarkupLine(Markup.Escape($"{results[0].CutPrompts} prompts were longer than the context leaves room for: they kept BOS and their last tokens."));
    }
}
