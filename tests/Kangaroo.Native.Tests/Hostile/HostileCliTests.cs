using System.Diagnostics;
using Kangaroo.Native.Tests.Cli;

namespace Kangaroo.Native.Tests.Hostile;

/// <summary>The issue's reproductions through the real <c>kangaroo</c> command: each ends with a
/// non-zero exit and one clear line on stderr, and no file but the named output changes.</summary>
public sealed class HostileCliTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly string[] Generate = ["generate", "--prompt", "Once", "--max-new-tokens", "4", "--device", "cpu"];

    private static string[] TrainAdapter(string model, string output) =>
        ["train-adapter", "--model", model, "--device", "cpu", "--exit-layer", "2", "--self-generate", "4", "--seq-len", "16", "--epochs", "1", "--out", output];

    [Theory]
    [InlineData(new[] { "--decoder", "early-exit", "--exit-layer", "2", "--draft-steps", "2147483647" }, new[] { "--draft-steps 2147483647 must be below 64" })]
    [InlineData(new[] { "--seed", "-1" }, new[] { "--seed '-1' is not an integer from 0 to" })]
    [InlineData(new[] { "--decoder", "early-exit", "--exit-layer", "x" }, new[] { "--exit-layer 'x' is not an integer" })]
    [InlineData(new[] { "--temperature", "warm" }, new[] { "--temperature 'warm' is not a number" })]
    public void GenerateRefusesWithOneLine(string[] options, string[] fragments)
    {
        var result = KangarooProcess.Run([.. Generate, .. options]);
        KangarooProcess.AssertOneLineError(result, fragments);
        Assert.DoesNotContain("System.", result.Stderr);
    }

    [Theory]
    [InlineData("1,,2")]
    [InlineData("1,2,")]
    [InlineData(",1")]
    [InlineData("")]
    public void EmptyPromptIdEntryIsRefused(string ids) =>
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--prompt-ids", ids, "--device", "cpu"), $"--prompt-ids '{ids}' is not a comma-separated list");

    [Fact]
    public void SelfGenerateCountIsCheckedUpFront() =>
        KangarooProcess.AssertOneLineError(
            KangarooProcess.Run("train-adapter", "--device", "cpu", "--exit-layer", "2", "--self-generate", "2147483647", "--out", _temp.File("a.safetensors")),
            "--self-generate 2147483647 must be in 0..1000000");

    [Fact]
    public void EmptyOutIsRefused()
    {
        var result = KangarooProcess.Run(TrainAdapter(SharedData.EmbeddedModel, ""));
        KangarooProcess.AssertOneLineError(result, "--out '' is not a file name");
        Assert.DoesNotContain("Parameter", result.Stderr);
    }

    [Fact]
    public void OutThatIsTheModelIsRefusedAndTheModelKept()
    {
        var model = HostileFiles.Model(_temp.Path);
        var before = File.ReadAllBytes(model);
        KangarooProcess.AssertOneLineError(KangarooProcess.Run(TrainAdapter(model, model)), $"--out {model}: is the input {model}");
        Assert.Equal(before, File.ReadAllBytes(model));
        var tokenizer = Path.Combine(_temp.Path, "tok512.model");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run(TrainAdapter(model, tokenizer)), "is the input");
        Assert.Equal(File.ReadAllBytes(HostileFiles.EmbeddedTokenizer), File.ReadAllBytes(tokenizer));
    }

    [PosixFact]
    public void OutThatIsAFifoOrADeviceIsRefused()
    {
        var fifo = HostileFiles.Fifo(_temp.File("adapter.fifo"));
        KangarooProcess.AssertOneLineError(KangarooProcess.Run(TrainAdapter(SharedData.EmbeddedModel, fifo)), "not a regular file");
        Assert.Equal(Kangaroo.Native.Loader.FileKind.Other, Kangaroo.Native.Loader.InputFile.KindOf(fifo));
        KangarooProcess.AssertOneLineError(KangarooProcess.Run(TrainAdapter(SharedData.EmbeddedModel, "/dev/full")), "--out /dev/full", "not a regular file");
        Assert.Equal(Kangaroo.Native.Loader.FileKind.Other, Kangaroo.Native.Loader.InputFile.KindOf("/dev/full"));
    }

    [PosixFact]
    public void OutThroughASymlinkWritesItsTarget()
    {
        var target = _temp.File("target.safetensors");
        File.WriteAllText(target, "old");
        var link = _temp.File("link.safetensors");
        File.CreateSymbolicLink(link, target);
        var result = KangarooProcess.Run(TrainAdapter(SharedData.EmbeddedModel, link));
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.Equal(2, Kangaroo.Native.Engine.Kangaroo.AdapterWeights.Load(target).ExitLayer);
    }

    [Fact]
    public void DivergingTrainingStopsAndSavesNothing()
    {
        var output = _temp.File("a.safetensors");
        var result = KangarooProcess.Run([.. TrainAdapter(SharedData.EmbeddedModel, output), "--lr", "1e30"]);
        Assert.Equal(1, result.ExitCode);
        var last = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries)[^1]; // after the progress lines
        Assert.StartsWith("kangaroo: training diverged: the loss is NaN", last);
        Assert.Contains("--lr", last);
        Assert.False(File.Exists(output));
    }

    [Fact]
    public void NonFiniteModelIsRefused()
    {
        var model = HostileFiles.Model(_temp.Path, bytes => HostileFiles.SetFloat(bytes, HostileFiles.FinalNormOffset, float.NaN));
        KangarooProcess.AssertOneLineError(KangarooProcess.Run([.. Generate, "--model", model]), model, "non-finite");
    }

    [PosixFact]
    public void FifoModelIsRefusedNotWaitedOn()
    {
        var fifo = HostileFiles.Fifo(_temp.File("model.bin"));
        KangarooProcess.AssertOneLineError(KangarooProcess.Run([.. Generate, "--model", fifo]), fifo, "not a regular file");
    }

    [PosixFact]
    public void PromptFileThatIsAFifoOrBadJsonIsRefused()
    {
        var fifo = HostileFiles.Fifo(_temp.File("prompts.fifo"));
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--device", "cpu", "--prompt-file", fifo), fifo, "not a regular file");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("train-adapter", "--device", "cpu", "--exit-layer", "1", "--self-generate", "2",
            "--prompt-file", fifo, "--out", _temp.File("a.safetensors")), fifo, "not a regular file");
        var json = _temp.File("prompts.jsonl");
        File.WriteAllLines(json, ["Once upon a time", "{\"text\": \"Tom had", "{\"turns\": [3]}"]);
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--device", "cpu", "--prompt-file", json), json, "line 2 is not valid JSON");
        File.WriteAllLines(json, ["Once upon a time", "{\"turns\": [3]}"]);
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("bench", "--device", "cpu", "--prompt-file", json), json, "line 2 has no \"prompt_ids\"");
    }

    /// <summary>Runs kangaroo through the shell, for redirections a ProcessStartInfo cannot make.</summary>
    private static KangarooProcess.Result Shell(string redirections, params string[] args)
    {
        var command = $"dotnet '{Path.Combine(AppContext.BaseDirectory, "kangaroo.dll")}' {string.Join(' ', args.Select(a => $"'{a}'"))} {redirections}";
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(60)), $"{command} did not finish");
        return new KangarooProcess.Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    [PosixFact]
    public void ClosedStderrIsExitOneNotAnAbort()
    {
        Assert.Equal(1, Shell("2>&-", [.. Generate, "--seed", "-1"]).ExitCode);
        Assert.Equal(1, Shell("2>&-", [.. Generate, "--top-k", "-1"]).ExitCode);
        Assert.Equal(0, Shell("2>&-", Generate).ExitCode);
    }

    [PosixTheory]
    [InlineData(">&-", "Bad file descriptor")]
    [InlineData(">/dev/full", "No space left on device")]
    public void UnwritableStdoutIsOneLine(string redirection, string problem)
    {
        KangarooProcess.AssertOneLineError(Shell(redirection, Generate), $"cannot write to stdout: {problem}");
        KangarooProcess.AssertOneLineError(Shell(redirection, [.. Generate, "--json"]), $"cannot write to stdout: {problem}");
    }
}
