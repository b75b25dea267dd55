namespace Kangaroo.Native.Tests.Cli;

/// <summary>The <c>kangaroo</c> command end to end: output, JSON fields, and one-line errors.</summary>
public sealed class CliTests
{
    private static readonly GoldenCase OnceUponATime = GoldenCase.All.Single(g => g.Prompt == "Once upon a time");

    [Fact]
    public void GenerateStreamsTheEmbeddedModelsStory()
    {
        var result = KangarooProcess.Run("generate", "--prompt", "Once upon a time", "--max-new-tokens", "40", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("Once upon a time, there was a little girl named Lily.", result.Stdout);
    }

    /// <summary><c>--threads</c> changes no token;
    /// fewer than one is refused in one line.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void ThreadsChangeNoToken(int threads)
    {
        var result = KangarooProcess.Run("generate", "--prompt", OnceUponATime.Prompt, "--max-new-tokens", OnceUponATime.MaxNewTokens.ToString(),
            "--device", "cpu", "--threads", threads.ToString(), "--decoder", "autoregressive", "--json");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(OnceUponATime.GeneratedIds, KangarooProcess.JsonIds(result, "generated_ids"));
        var refused = KangarooProcess.Run("generate", "--prompt", "Hi", "--threads", "0");
        Assert.Equal(1, refused.ExitCode);
        Assert.Equal("kangaroo: --threads 0 must be >= 1", refused.Stderr.Trim());
    }

    [Theory]
    [InlineData("autoregressive")]
    [InlineData("early-exit")]
    public void GenerateJsonMatchesGolden(string decoder)
    {
        var result = KangarooProcess.Run("generate", "--prompt", OnceUponATime.Prompt, "--max-new-tokens", OnceUponATime.MaxNewTokens.ToString(),
            "--device", "cpu", "--decoder", decoder, "--exit-layer", "3", "--json");
        Assert.Equal(0, result.ExitCode);
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        int[] Ids(string name) => json.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(OnceUponATime.PromptIds, Ids("prompt_ids"));
        Assert.Equal(OnceUponATime.GeneratedIds, Ids("generated_ids"));
        Assert.Equal("length", json.GetProperty("stop").GetString());
        Assert.Equal(decoder, json.GetProperty("decoder").GetString());
        Assert.Equal("cpu", json.GetProperty("device").GetString());
        Assert.StartsWith(", there was a little girl", json.GetProperty("text").GetString());
        var accepted = Ids("accept_lengths");
        Assert.Equal(OnceUponATime.GeneratedIds.Length, accepted.Sum());
        Assert.Equal(accepted.Length, json.GetProperty("target_forward_passes").GetInt32());
        Assert.Equal(accepted.Average(), json.GetProperty("compression_rate").GetDouble(), 3);
        Assert.Equal(6, json.GetProperty("ctar").EnumerateObject().Count());
        Assert.True(json.GetProperty("tokens_per_second").GetDouble() > 0);
    }

    [Fact]
    public void StopTokenEndsGenerationAndIsReported()
    {
        var golden = GoldenCase.All.First(g => g.Stop == "bos");
        var result = KangarooProcess.Run("generate", "--prompt-ids", string.Join(",", golden.PromptIds), "--max-new-tokens", "400", "--device", "cpu", "--json");
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal(golden.GeneratedIds, json.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("stop_token", json.GetProperty("stop").GetString());
    }

    [Fact]
    public void MaxNewTokensPastTheContextIsClampedWithANote()
    {
        var result = KangarooProcess.Run("generate", "--prompt-ids", "1", "--max-new-tokens", "100000", "--device", "cpu", "--json");
        Assert.Equal(0, result.ExitCode);
        Assert.Contains("--max-new-tokens 100000 clamped to 512", result.Stderr);
    }

    [Theory]
    [InlineData(new[] { "generate", "--prompt", "x", "--device", "tpu" }, new[] { "unknown device 'tpu'" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--model", "/nonexistent/model.bin" }, new[] { "/nonexistent/model.bin", "no such model" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--prompt-ids", "1" }, new[] { "exactly one of --prompt and --prompt-ids" })]
    [InlineData(new[] { "generate", "--prompt-ids", "1,x" }, new[] { "--prompt-ids '1,x'" })]
    [InlineData(new[] { "generate", "--prompt-ids", "1,9999" }, new[] { "token id 9999" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--max-new-tokens", "-1" }, new[] { "--max-new-tokens -1" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--temperature", "-1" }, new[] { "--temperature -1" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--top-p", "0" }, new[] { "--top-p 0" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--decoder", "kangaroo", "--adapter", "/nonexistent/a.safetensors" }, new[] { "/nonexistent/a.safetensors", "not found" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--decoder", "early-exit", "--exit-layer", "9" }, new[] { "--exit-layer 9" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--decoder", "early-exit", "--exit-layer", "2", "--draft-steps", "0" }, new[] { "--draft-steps 0" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--decoder", "fast" }, new[] { "unknown decoder 'fast'" })]
    [InlineData(new[] { "generate", "--prompt", "x", "--frobnicate" }, new[] { "--frobnicate" })]
    [InlineData(new[] { "convert", "--out", "/tmp/kangaroo-never", "--dtype", "f8" }, new[] { "--dtype 'f8' is not one of bf16, f16, f32, q3_k" })]
    [InlineData(new[] { "bench", "--draft-vocab", "10" }, new[] { "--draft-vocab applies to --costs only" })]
    [InlineData(new[] { "bench", "--acceptance-from", "x.safetensors" }, new[] { "--acceptance-from applies to --costs only" })]
    [InlineData(new[] { "bench", "--costs", "--device", "cpu", "--acceptance-from", "missing.safetensors" }, new[] { "missing.safetensors", "not found" })]
    [InlineData(new[] { "bench", "--costs", "--device", "cpu", "--draft-vocab", "0" }, new[] { "--draft-vocab 0 must be in 1..512" })]
    [InlineData(new[] { "bench", "--costs", "--device", "cpu", "--exit-layer", "5" }, new[] { "--exit-layer 5" })]
    public void BadInputGivesOneLineError(string[] args, string[] fragments) =>
        KangarooProcess.AssertOneLineError(KangarooProcess.Run(args), fragments);

    [Fact]
    public void GenerateAutoSaysWhatItChoseAndWhy()
    {
        var result = KangarooProcess.Run("generate", "--prompt", OnceUponATime.Prompt, "--max-new-tokens", "64", "--device", "cpu", "--decoder", "auto", "--json");
        Assert.Equal(0, result.ExitCode);
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal(OnceUponATime.GeneratedIds.Take(64), json.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("auto", json.GetProperty("decoder").GetString());
        var plan = json.GetProperty("plan");
        Assert.Equal(6, plan.GetProperty("options").GetArrayLength());
        Assert.True(plan.GetProperty("autoregressive_tokens_per_second").GetDouble() > 0);
        var speculates = plan.GetProperty("chosen").ValueKind != JsonValueKind.Null;
        Assert.StartsWith(speculates ? "speculate with gamma" : "autoregressive", json.GetProperty("choice").GetString());
    }

    [Fact]
    public void BenchCostsJsonHasEveryPartOfARound()
    {
        var shipped = Path.Combine(SharedData.RepositoryRoot, "models", "stories260K", "kangaroo-adapter.safetensors");
        var result = KangarooProcess.Run("bench", "--costs", "--device", "cpu", "--exit-layer", "2", "--draft-steps", "3", "--draft-vocab", "100",
            "--acceptance-from", shipped, "--json");
        Assert.Equal(0, result.ExitCode);
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        Assert.Equal(2, json.GetProperty("exit_layer").GetInt32());
        Assert.Equal(100, json.GetProperty("draft_vocab").GetInt32());
        Assert.Equal("untrained adapter of the right shape", json.GetProperty("adapter").GetString());
        Assert.Equal(shipped, json.GetProperty("acceptance").GetString());
        Assert.Equal(3, json.GetProperty("plan").GetProperty("options").GetArrayLength()); // the best eta for each gamma in 1..3
        var costs = json.GetProperty("costs");
        var ar = costs.GetProperty("autoregressive_step_ms").GetDouble();
        Assert.True(ar > 0);
        Assert.Equal(costs.GetProperty("draft_step_ms").GetDouble() / ar, costs.GetProperty("draft_ratio").GetDouble(), 6);
        Assert.Equal(4, costs.GetProperty("verify_ms").GetArrayLength());
        Assert.Equal(4, costs.GetProperty("verify_ratio").GetArrayLength());
        Assert.InRange(costs.GetProperty("draft_byte_ratio").GetDouble(), 0.1, 0.9);
    }

    [Fact]
    public void BenchAutoIsIdenticalToAutoregressiveAndSaysWhy()
    {
        var result = KangarooProcess.Run("bench", "--device", "cpu", "--decoders", "auto", "--prompts", "2", "--max-new-tokens", "32", "--json");
        Assert.Equal(0, result.ExitCode);
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        var auto = json.GetProperty("results").EnumerateArray().Single(r => r.GetProperty("Decoder").GetString() == "auto");
        Assert.True(auto.GetProperty("IdenticalToAutoregressive").GetBoolean());
        Assert.Equal(6, json.GetProperty("auto").GetProperty("plan").GetProperty("options").GetArrayLength());
        Assert.Equal(7, json.GetProperty("auto").GetProperty("costs").GetProperty("verify_ms").GetArrayLength());
    }

    /// <summary>A golden file is a prompt file: its token ids are the prompts and its limits bound each generation,
    /// so bench decodes exactly the golden tokens.</summary>
    [Fact]
    public void BenchTakesAGoldenFileAsPrompts()
    {
        var golden = SharedData.Path("golden", "stories260K-greedy.jsonl");
        var result = KangarooProcess.Run("bench", "--device", "cpu", "--decoders", "kangaroo", "--prompt-file", golden, "--json");
        Assert.Equal(0, result.ExitCode);
        var results = JsonDocument.Parse(result.Stdout).RootElement.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal(GoldenCase.All.Sum(g => g.GeneratedIds.Length), results[0].GetProperty("Tokens").GetInt32());
        Assert.True(results[1].GetProperty("IdenticalToAutoregressive").GetBoolean());
    }

    [Fact]
    public void PromptLongerThanTheContextIsRefused()
    {
        var ids = string.Join(",", Enumerable.Repeat(300, 600).Prepend(1));
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--prompt-ids", ids, "--device", "cpu"), "601 tokens", "context is 512");
    }

    [Fact]
    public void ConvertedDirectoryGeneratesTheSameTokens()
    {
        using var temp = new TempDirectory();
        var directory = temp.File("hf");
        var convert = KangarooProcess.Run("convert", "--out", directory, "--dtype", "f32");
        Assert.Equal(0, convert.ExitCode);
        var result = KangarooProcess.Run("generate", "--model", directory, "--prompt", OnceUponATime.Prompt, "--max-new-tokens", "64", "--device", "cpu", "--json");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(OnceUponATime.GeneratedIds.Take(64), JsonDocument.Parse(result.Stdout).RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()));
    }

    [Fact]
    public void DevicesListsEveryKind()
    {
        var result = KangarooProcess.Run("devices");
        Assert.Equal(0, result.ExitCode);
        foreach (var kind in new[] { "cpu", "ilgpu-cpu", "opencl", "cuda" }) Assert.Contains(kind, result.Stdout);
        Assert.Contains("--device auto chooses", result.Stdout);
    }
}
