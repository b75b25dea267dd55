using System.CommandLine;
using Kangaroo.Native.Cli;

namespace Kangaroo.Native.Tests.Training;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ConsoleCollection
{
    public const string Name = "console output";
}

/// <summary><c>kangaroo train-adapter</c> run in-process: it writes a usable adapter with its settings
/// in the metadata, and bad input gives one clear line on stderr and exit code 1.</summary>
[Collection(ConsoleCollection.Name)]
public sealed class TrainAdapterCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kangaroo-train-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static (int Code, string Out, string Error) Run(params string[] args) =>
        InProcessCli.Run([TrainAdapterCommand.Create()], ["train-adapter", "--model", SharedData.EmbeddedModel, "--device", "cpu", .. args]);

    /// <summary>The error line of a run that must fail with exit code 1.</summary>
    private static string Refused(params string[] args)
    {
        var (code, _, stderr) = Run(args);
        Assert.Equal(1, code);
        return stderr.Trim();
    }

    [Fact]
    public void TrainsSavesAndDecodesLosslessly()
    {
        var data = Path.Combine(_dir, "stories.jsonl");
        File.WriteAllLines(data, ["{\"text\": \"Once upon a time, there was a little girl named Lily. She loved to play outside.\"}", "{\"turns\": [\"Tom had a red ball.\", \"He was happy.\"]}"]);
        var prompts = Path.Combine(_dir, "prompts.txt");
        File.WriteAllLines(prompts, ["The cat sat", "", "Tom had a kite"]);
        var output = Path.Combine(_dir, "adapter.safetensors");
        var (code, stdout, stderr) = Run("--exit-layer", "2", "--data", data, "--self-generate", "4", "--prompt", "Once upon a time", "--prompt-file", prompts,
            "--self-generate-temperature", "0.5", "--seq-len", "48",
            "--epochs", "2", "--batch", "2", "--lr", "0.01", "--seed", "5", "--draft-vocab", "64", "--out", output);
        Assert.True(code == 0, stderr);
        Assert.Contains($"{output}: exit layer 2, held-out loss", stdout);
        Assert.Contains("epoch 2/2", stderr);
        Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));

        var adapter = AdapterWeights.Load(output);
        Assert.Equal(2, adapter.ExitLayer);
        Assert.Equal("2", adapter.Metadata["kangaroo.train.epochs"]);
        Assert.Equal("48", adapter.Metadata["kangaroo.train.seq_len"]);
        Assert.Equal("5", adapter.Metadata["kangaroo.train.seed"]);
        Assert.Contains("stories.jsonl (2 texts, 2 sequences)", adapter.Metadata["kangaroo.train.data"]);
        Assert.Contains("self-generated 4 sequences (temperature 0.5, seed 5, from BOS and 3 prompts)", adapter.Metadata["kangaroo.train.data"]);
        Assert.Contains("--exit-layer 2", adapter.Metadata["kangaroo.train.command"]);
        Assert.True(double.Parse(adapter.Metadata["kangaroo.train.heldout_loss"], System.Globalization.CultureInfo.InvariantCulture) > 0);
        Assert.Equal(64, adapter.DraftVocabulary!.Length);
        Assert.True(adapter.Acceptance!.Drafts(1) > 0, "held-out acceptance was measured");
        Assert.Contains("tokens per round expected at gamma 6, eta 0.6", stdout);

        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var decoder = session.CreateDecoder("kangaroo", output);
        var golden = GoldenCase.All[1];
        Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray());
    }

    [Fact]
    public void DraftVocabularyLargerThanTheModels() =>
        Assert.Equal("kangaroo: --draft-vocab 600 must be in 1..512", Refused("--exit-layer", "1", "--self-generate", "2", "--draft-vocab", "600", "--out", Path.Combine(_dir, "a.safetensors")));

    [Fact]
    public void EmptyDataFile()
    {
        var data = Path.Combine(_dir, "empty.txt");
        File.WriteAllText(data, "");
        Assert.Equal($"kangaroo: {data}: the data file holds no text to train on", Refused("--exit-layer", "1", "--data", data, "--out", Path.Combine(_dir, "a.safetensors")));
    }

    [Fact]
    public void SequenceLengthPastTheContext() =>
        Assert.Equal("kangaroo: --seq-len 600 is past the model's context of 512 positions", Refused("--exit-layer", "1", "--self-generate", "2", "--seq-len", "600", "--out", Path.Combine(_dir, "a.safetensors")));

    [Theory]
    [InlineData(0)]
    [InlineData(5)]
    public void ExitLayerOutOfRange(int layer) =>
        Assert.Equal($"kangaroo: --exit-layer {layer} must be in 1..4 for a 5-layer model", Refused("--exit-layer", $"{layer}", "--self-generate", "2", "--out", Path.Combine(_dir, "a.safetensors")));

    [Fact]
    public void OutputNotWritable()
    {
        var missing = Path.Combine(_dir, "no-such-dir", "a.safetensors");
        Assert.StartsWith($"kangaroo: --out {missing}: directory", Refused("--exit-layer", "1", "--self-generate", "2", "--out", missing));

        Assert.StartsWith($"kangaroo: --out {_dir}: is a directory", Refused("--exit-layer", "1", "--self-generate", "2", "--out", _dir));

        if (OperatingSystem.IsLinux())
            Assert.StartsWith("kangaroo: --out /proc/kangaroo-adapter.safetensors: not writable", Refused("--exit-layer", "1", "--self-generate", "2", "--out", "/proc/kangaroo-adapter.safetensors"));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-0.5")]
    public void SelfGenerationTemperatureNotPositive(string temperature) =>
        Assert.StartsWith($"kangaroo: --self-generate-temperature {temperature} must be positive", Refused("--exit-layer", "1", "--self-generate", "2", "--self-generate-temperature", temperature, "--out", Path.Combine(_dir, "a.safetensors")));

    [Fact]
    public void PromptFileMissingOrEmpty()
    {
        var missing = Path.Combine(_dir, "none.txt");
        Assert.Equal($"kangaroo: --prompt-file {missing}: file not found", Refused("--exit-layer", "1", "--self-generate", "2", "--prompt-file", missing, "--out", Path.Combine(_dir, "a.safetensors")));

        var blank = Path.Combine(_dir, "blank.txt");
        File.WriteAllText(blank, "\n  \n");
        Assert.Equal($"kangaroo: --prompt-file {blank}: no prompts in the file", Refused("--exit-layer", "1", "--self-generate", "2", "--prompt-file", blank, "--out", Path.Combine(_dir, "a.safetensors")));
    }

    [Fact]
    public void NoDataSource() =>
        Assert.Equal("kangaroo: give --data FILE, --self-generate N, or both", Refused("--exit-layer", "1", "--out", Path.Combine(_dir, "a.safetensors")));
}
