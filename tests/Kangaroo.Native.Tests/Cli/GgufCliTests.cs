namespace Kangaroo.Native.Tests.Cli;

/// <summary>The <c>kangaroo</c> command on GGUF files, as a new user runs it: generate (the format told
/// by its magic, the tokenizer from the file), convert to GGUF, and the file's chat template.</summary>
public sealed class GgufCliTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>A GGUF file under another name is still read as GGUF: the prompt encodes with the file's
    /// tokenizer and generates the float64 golden of that file (../shared/golden/gguf-greedy.jsonl).</summary>
    [Fact]
    public void GenerateReadsAGgufWhateverItIsCalled()
    {
        const string file = "stories260K-q8_0-v2.gguf";
        var golden = GreedyGolden.Load("gguf-greedy.jsonl").Single(g => g.Model == file && g.Prompt == "Once upon a time");
        var model = _temp.File("stories.bin");
        File.Copy(GgufGoldenTests.ModelPath(file), model);
        var result = KangarooProcess.Run("generate", "--model", model, "--prompt", golden.Prompt, "--max-new-tokens", "20", "--device", "cpu", "--json");
        Assert.Equal(golden.PromptIds, KangarooProcess.JsonIds(result, "prompt_ids"));
        Assert.Equal(golden.GeneratedIds.Take(20), KangarooProcess.JsonIds(result, "generated_ids"));
    }

    /// <summary>A q4_0 conversion written by <c>convert</c> generates, through the command line, exactly what
    /// the original quantized at load (<c>--weights q4_0</c>) generates.</summary>
    [Fact]
    public void ConvertWritesAGgufThatGenerates()
    {
        var output = _temp.File("stories260K-q4_0.gguf");
        var convert = KangarooProcess.Run("convert", "--out", output, "--dtype", "q4_0");
        Assert.Equal(0, convert.ExitCode);
        Assert.Equal(output, convert.Stdout.Trim());
        using (var file = GgufFile.Open(output)) Assert.Equal(ElementType.Q4_0, file.Info("blk.0.attn_q.weight").Type);
        string[] generate = ["generate", "--prompt", "Once upon a time", "--max-new-tokens", "32", "--device", "cpu", "--json"];
        var fromFile = KangarooProcess.Run([.. generate, "--model", output]);
        var atLoad = KangarooProcess.Run([.. generate, "--weights", "q4_0"]);
        Assert.Equal(KangarooProcess.JsonIds(atLoad, "prompt_ids"), KangarooProcess.JsonIds(fromFile, "prompt_ids"));
        var expected = KangarooProcess.JsonIds(atLoad, "generated_ids");
        Assert.Equal(32, expected.Length);
        Assert.Equal(expected, KangarooProcess.JsonIds(fromFile, "generated_ids"));
    }

    [Fact]
    public void TemplateRendersTheFilesChatTemplate()
    {
        var model = _temp.File("chat.gguf");
        Loader.GgufTests.WriteChatTemplateOnly(model, "{{ bos_token }}{% for m in messages %}[{{ m.role }}: {{ m.content }}]{% endfor %}{{ eos_token }}");
        File.WriteAllText(_temp.File("messages.json"), """[{"role": "user", "content": "hi"}]""");
        var result = KangarooProcess.Run("template", "--template", model, "--messages", _temp.File("messages.json"));
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("<s>[user: hi]</s>", result.Stdout);
    }

    [Fact]
    public void ConvertRefusesATokenizerJsonByName() =>
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("convert", "--model", SharedData.Path("models", "TinyStories-656K"), "--out", _temp.File("t.gguf")),
            "tokenizer.json: a Hugging Face tokenizer.json cannot be converted; only SentencePiece tokenizers can");

    [Fact]
    public void QuantizedTypesNeedAGgufOutput() =>
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("convert", "--out", _temp.File("hf"), "--dtype", "q8_0"),
            "a Hugging Face directory holds safetensors, which has no Q8_0 type");
}
