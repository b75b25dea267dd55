namespace Kangaroo.Native.Tests.Cli;

/// <summary><c>bench --spec-bench</c> on TinyStories-656K with a ChatML template file, over one question of each of
/// Spec-Bench's tasks (MT-bench's with two turns): answer files in Spec-Bench's format and the per-task table.</summary>
public sealed class SpecBenchTests : IDisposable
{
    private static readonly string Model = SharedData.Path("models", "TinyStories-656K");
    private static readonly string Adapter = Path.Combine(SharedData.RepositoryRoot, "perf", "adapters", "tinystories656K-l1.safetensors");
    private static readonly string Template = Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja");
    private static readonly string[] TaskNames = ["mt_bench", "translation", "summarization", "qa", "math_reasoning", "rag"];
    private readonly TempDirectory _directory = new();

    public void Dispose() => _directory.Dispose();

    /// <summary>The first question of each task of the real question.jsonl.</summary>
    private string Questions()
    {
        var lines = File.ReadLines(SharedData.Path("data", "spec_bench", "question.jsonl"))
            .GroupBy(line =>
            {
                var category = JsonDocument.Parse(line).RootElement.GetProperty("category").GetString()!;
                return TaskNames.Contains(category) ? category : "mt_bench";
            })
            .Select(g => g.First());
        var path = Path.Combine(_directory.Path, "questions.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    private static List<JsonElement> ReadAnswers(string path) =>
        File.ReadAllLines(path).Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToList();

    [Fact]
    public void WritesSpecBenchAnswersForTheBaselineAndKangarooAndPrintsTheTable()
    {
        var questions = Questions();
        var answerFile = Path.Combine(_directory.Path, "answers.jsonl");
        var result = KangarooProcess.Run("bench", "--model", Model, "--device", "cpu", "--adapter", Adapter, "--spec-bench", questions,
            "--answer-file", answerFile, "--chat-template", Template, "--max-new-tokens", "48");
        Assert.True(result.ExitCode == 0, result.Stderr);
        foreach (var task in TaskNames.Append("overall")) Assert.Contains(task, result.Stdout);
        Assert.Contains("kangaroo", result.Stdout);
        Assert.Contains("tok/s ratio", result.Stdout);

        var baseline = ReadAnswers(Path.Combine(_directory.Path, "answers-autoregressive.jsonl"));
        var kangaroo = ReadAnswers(Path.Combine(_directory.Path, "answers-kangaroo.jsonl"));
        var asked = File.ReadAllLines(questions).Select(line => JsonDocument.Parse(line).RootElement.Clone()).ToList();
        Assert.Equal(6, baseline.Count);
        Assert.Equal(6, kangaroo.Count);
        for (var i = 0; i < asked.Count; i++)
        {
            var turns = asked[i].GetProperty("turns").GetArrayLength();
            foreach (var (answers, decoder) in new[] { (baseline, "autoregressive"), (kangaroo, "kangaroo") })
            {
                var answer = answers[i];
                Assert.Equal(asked[i].GetProperty("question_id").GetInt32(), answer.GetProperty("question_id").GetInt32());
                Assert.Equal(asked[i].GetProperty("category").GetString(), answer.GetProperty("category").GetString());
                Assert.Equal($"TinyStories-656K-{decoder}", answer.GetProperty("model_id").GetString());
                var choice = Assert.Single(answer.GetProperty("choices").EnumerateArray());
                Assert.Equal(0, choice.GetProperty("index").GetInt32());
                int[] Ints(string name) => choice.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
                Assert.Equal(turns, choice.GetProperty("turns").GetArrayLength());
                Assert.Equal(turns, choice.GetProperty("wall_time").EnumerateArray().Count(t => t.GetDouble() > 0));
                var newTokens = Ints("new_tokens");
                var steps = Ints("decoding_steps");
                var accepted = Ints("accept_lengths");
                Assert.Equal(turns, newTokens.Length);
                Assert.All(newTokens, n => Assert.InRange(n, 1, 48));
                Assert.Equal(newTokens.Sum(), accepted.Sum()); // every new token is committed by one round
                Assert.Equal(steps.Sum(), accepted.Length);    // one target forward pass per round
                if (decoder == "autoregressive") Assert.All(accepted, n => Assert.Equal(1, n));
            }
            Assert.Equal(baseline[i].GetProperty("choices")[0].GetProperty("turns").ToString(), kangaroo[i].GetProperty("choices")[0].GetProperty("turns").ToString()); // lossless
        }
        Assert.Contains(kangaroo, a => a.GetProperty("choices")[0].GetProperty("accept_lengths").EnumerateArray().Any(n => n.GetInt32() > 1));

        // A question's first turn is the reply generate --chat gives to it alone.
        var qa = asked.FindIndex(q => q.GetProperty("category").GetString() == "qa");
        var single = KangarooProcess.Run("generate", "--chat", "--model", Model, "--device", "cpu", "--chat-template", Template, "--decoder", "autoregressive",
            "--max-new-tokens", "48", "--prompt", asked[qa].GetProperty("turns")[0].GetString()!);
        Assert.Equal(single.Stdout[..^1], baseline[qa].GetProperty("choices")[0].GetProperty("turns")[0].GetString());
    }

    [Fact]
    public void QuestionsLimitsTheRunAndJsonPrintsTheTable()
    {
        var answerFile = Path.Combine(_directory.Path, "a.jsonl");
        var result = KangarooProcess.Run("bench", "--model", Model, "--device", "cpu", "--adapter", Adapter, "--spec-bench", SharedData.Path("data", "spec_bench", "question.jsonl"),
            "--answer-file", answerFile, "--chat-template", Template, "--max-new-tokens", "16", "--questions", "2", "--decoders", "kangaroo,early-exit", "--json");
        Assert.True(result.ExitCode == 0, result.Stderr);
        using var json = JsonDocument.Parse(result.Stdout);
        var decoders = json.RootElement.GetProperty("results").EnumerateArray().Select(r => r.GetProperty("Decoder").GetString()).ToList();
        Assert.Equal(["autoregressive", "kangaroo", "early-exit"], decoders);
        foreach (var decoder in json.RootElement.GetProperty("results").EnumerateArray())
        {
            var overall = decoder.GetProperty("Tasks").EnumerateArray().Last();
            Assert.Equal("overall", overall.GetProperty("Task").GetString());
            Assert.Equal(2, overall.GetProperty("Questions").GetInt32());
            Assert.Equal(overall.GetProperty("TokensPerSecond").GetDouble() / overall.GetProperty("BaselineTokensPerSecond").GetDouble(), overall.GetProperty("SpeedRatio").GetDouble(), 9);
            if (decoder.GetProperty("Decoder").GetString() == "autoregressive")
                foreach (var name in new[] { "Speedup", "SpeedRatio", "CompressionRate" }) Assert.Equal(1.0, overall.GetProperty(name).GetDouble(), 9);
        }
        Assert.Equal(2, File.ReadAllLines(Path.Combine(_directory.Path, "a-early-exit.jsonl")).Length);
    }

    [Fact]
    public void ErrorsNameTheArgument()
    {
        var questions = SharedData.Path("data", "spec_bench", "question.jsonl");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--model", Model, "--spec-bench", questions, "--chat-template", Template), "--spec-bench needs --answer-file");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--model", Model, "--answer-file", "x.jsonl"), "--answer-file applies to --spec-bench only");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--model", Model, "--spec-bench", "nope.jsonl", "--answer-file", "x.jsonl"), "nope.jsonl", "--spec-bench file not found");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--model", Model, "--device", "cpu", "--spec-bench", questions, "--answer-file", "x.jsonl"),
            "has no chat template", "--chat-template");
        var notQuestions = Path.Combine(_directory.Path, "bad.jsonl");
        File.WriteAllText(notQuestions, "{\"text\": \"hello\"}\n");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--model", Model, "--device", "cpu", "--spec-bench", notQuestions, "--answer-file", "x.jsonl",
            "--chat-template", Template), "bad.jsonl", "line 1 is not a question");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--model", Model, "--device", "cpu", "--spec-bench", questions, "--answer-file", "/nonexistent/a.jsonl",
            "--chat-template", Template, "--adapter", Adapter), "--answer-file /nonexistent/a.jsonl", "does not exist");
    }
}
