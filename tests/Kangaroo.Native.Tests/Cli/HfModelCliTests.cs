namespace Kangaroo.Native.Tests.Cli;

/// <summary><c>kangaroo generate</c> on a Hugging Face model as published (TinyStories-656K: tied
/// lm_head.weight only, tokenizer.json only), as a new user runs it.</summary>
public sealed class HfModelCliTests
{
    private static readonly string Model = SharedData.Path("models", "TinyStories-656K");

    [Fact]
    public void GenerateWritesAStory()
    {
        var result = KangarooProcess.Run("generate", "--model", Model, "--prompt", "Once upon a time", "--max-new-tokens", "30", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("Once upon a time, a little girl named Lily lived in a small house", result.Stdout);
    }

    [Fact]
    public void TokenizerJsonIsAcceptedAsTokenizer()
    {
        var result = KangarooProcess.Run("generate", "--model", Model, "--tokenizer", Path.Combine(Model, "tokenizer.json"),
            "--prompt", "Once upon a time", "--max-new-tokens", "5", "--device", "cpu");
        Assert.Equal(0, result.ExitCode);
        Assert.StartsWith("Once upon a time", result.Stdout);
    }

    [Fact]
    public void ContextIsChosenAndExplainedWhenTooShort()
    {
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--model", Model, "--prompt", "Once upon a time there was a dog", "--context", "4", "--device", "cpu"),
            "the prompt is 8 tokens but the context is 4 positions", "--context", "max_position_embeddings 512");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--model", Model, "--prompt", "hi", "--context", "100000", "--device", "cpu"),
            "context 100000 exceeds the model's max_position_embeddings 512");
    }
}
