using Kangaroo.Native.Loader;
using Kangaroo.Native.Tests.Engine;

namespace Kangaroo.Native.Tests.Cli;

/// <summary>The <c>kangaroo</c> command on GGUF files, as a new user runs it: generate (the format told
/// by its magic, the tokenizer from the file), convert to GGUF, and the file's chat template.</summary>
public sealed class GgufCliTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void GenerateReadsAGgufWhateverItIsCalled()
    {
        var model = _temp.File("stories.bin");
        File.Copy(GgufGoldenTests.ModelPath("stories260K-q8_0-v2.gguf"), model);
        var result = KangarooProcess.Run("generate", "--model", model, "--prompt", "Once upon a time", "--max-new-tokens", "20", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("Once upon a time, there was a little", result.Stdout);
    }

    [Fact]
    public void ConvertWritesAGgufThatGenerates()
    {
        var output = _temp.File("stories260K-q4_0.gguf");
        var convert = KangarooProcess.Run("convert", "--out", output, "--dtype", "q4_0");
        Assert.Equal(0, convert.ExitCode);
        Assert.Equal(output, convert.Stdout.Trim());
        using (var file = GgufFile.Open(output)) Assert.Equal(DType.Q4_0, file.Info("blk.0.attn_q.weight").Type);
        var result = KangarooProcess.Run("generate", "--model", output, "--prompt", "Once upon a time", "--max-new-tokens", "8", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("Once upon a time", result.Stdout);
    }

    [Fact]
    public void TemplateRendersTheFilesChatTemplate()
    {
        var model = _temp.File("chat.gguf");
        GgufWriter.Write(model,
        [
            new("tokenizer.ggml.tokens", new GgufArray(GgufValueType.String, new[] { "<unk>", "<s>", "</s>" })),
            new("tokenizer.ggml.bos_token_id", 1u), new("tokenizer.ggml.eos_token_id", 2u),
            new("tokenizer.chat_template", "{{ bos_token }}{% for m in messages %}[{{ m.role }}: {{ m.content }}]{% endfor %}{{ eos_token }}"),
        ], [], (_, _) => { });
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
