using System.Text.Json;
using Kangaroo.Native.Tests.Engine;

namespace Kangaroo.Native.Tests.Cli;

/// <summary><c>kangaroo generate</c> on a Hugging Face model as published (TinyStories-656K: tied
/// lm_head.weight only, tokenizer.json only), as a new user runs it.</summary>
public sealed class HfModelCliTests
{
    private static readonly string Model = SharedData.Path("models", "TinyStories-656K");

    private static readonly GreedyGolden OnceUponATime = GreedyGolden.Load("tinystories656K-greedy.jsonl").Single(g => g.Prompt == "Once upon a time");

    /// <summary>The prompt encodes as Hugging Face's tokenizer does and generates the float64 golden's ids.</summary>
    [Fact]
    public void GenerateWritesTheGoldenStory()
    {
        var result = KangarooProcess.Run("generate", "--model", Model, "--prompt", OnceUponATime.Prompt, "--max-new-tokens", "30", "--device", "cpu", "--json");
        Assert.Equal(OnceUponATime.PromptIds, KangarooProcess.JsonIds(result, "prompt_ids"));
        Assert.Equal(OnceUponATime.GeneratedIds.Take(30), KangarooProcess.JsonIds(result, "generated_ids"));
        Assert.StartsWith(", a little girl named Lily lived in a small house", JsonDocument.Parse(result.Stdout).RootElement.GetProperty("text").GetString());
    }

    [Fact]
    public void TokenizerJsonIsAcceptedAsTokenizer()
    {
        var result = KangarooProcess.Run("generate", "--model", Model, "--tokenizer", Path.Combine(Model, "tokenizer.json"),
            "--prompt", OnceUponATime.Prompt, "--max-new-tokens", "5", "--device", "cpu", "--json");
        Assert.Equal(OnceUponATime.PromptIds, KangarooProcess.JsonIds(result, "prompt_ids"));
        Assert.Equal(OnceUponATime.GeneratedIds.Take(5), KangarooProcess.JsonIds(result, "generated_ids"));
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
