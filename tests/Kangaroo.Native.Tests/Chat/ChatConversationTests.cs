using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Chat;
using Kangaroo.Native.Templates;

namespace Kangaroo.Native.Tests.Chat;

/// <summary>A conversation kept in the KV cache between turns (TinyStories-656K, which has no chat template of its
/// own, with a ChatML template file): each turn prefills only what is new, and replies are exactly those of a
/// generation that prefills the whole conversation.</summary>
public sealed class ChatConversationTests
{
    private static readonly string Model = SharedData.Path("models", "TinyStories-656K");
    private static readonly string Adapter = Path.Combine(SharedData.RepositoryRoot, "perf", "adapters", "tinystories656K-l1.safetensors");
    private static readonly ChatTemplate Template = ChatTemplate.Load(Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja"));
    private static readonly SamplingOptions Greedy = new();

    private static InferenceSession Open()
    {
        var session = InferenceSession.Open(Model, "cpu");
        session.CostCache = null; // the auto decoder measures here instead of reading the user's cache
        return session;
    }

    /// <summary>The greedy reply of a fresh autoregressive decoder that prefills the whole prompt.</summary>
    private static string FreshReply(InferenceSession session, int[] prompt, int maxNewTokens)
    {
        var ids = session.CreateDecoder("autoregressive").Generate(prompt, maxNewTokens, Greedy).ToList();
        return session.Tokenizer!.Decode(ids.Where(id => !session.Model.Config.EosIds.Contains(id)));
    }

    [Theory]
    [InlineData("autoregressive")]
    [InlineData("kangaroo")]
    [InlineData("early-exit")]
    [InlineData("auto")]
    public void SecondTurnPrefillsOnlyTheNewTokensAndRepliesAsAFreshGeneration(string decoder)
    {
        using var session = Open();
        var conversation = new ChatConversation(Template, session.Tokenizer!, session.CreateDecoder(decoder, Adapter), "You tell stories.");
        var first = string.Concat(conversation.Reply("Tell me about a cat.", 40, Greedy));
        var firstLength = conversation.Decoder.Stats.PromptTokens + conversation.Decoder.Stats.GeneratedTokens;
        Assert.Equal(0, conversation.Decoder.Stats.ReusedTokens);

        var prompt = conversation.Prompt("What did the dog do?", 40);
        var second = string.Concat(conversation.Reply("What did the dog do?", 40, Greedy));
        var stats = conversation.Decoder.Stats;
        Assert.Equal(prompt.Length, stats.PromptTokens);
        Assert.InRange(stats.ReusedTokens, firstLength - 8, firstLength); // the reply as text may encode a little differently
        Assert.Equal(4, conversation.Turns.Count);
        Assert.Equal(("assistant", second), conversation.Turns[3]);

        Assert.Equal(FreshReply(session, prompt, 40), second); // lossless and unchanged by the kept cache
        Assert.Equal(first, FreshReply(session, Template.Encode(session.Tokenizer!, [("system", "You tell stories."), ("user", "Tell me about a cat.")]), 40));
    }

    [Fact]
    public void ADifferentSystemMessageRecomputesFromWhereTheTokensDiffer()
    {
        using var session = Open();
        var conversation = new ChatConversation(Template, session.Tokenizer!, session.CreateDecoder("kangaroo", Adapter));
        _ = string.Concat(conversation.Reply("Tell me about a cat.", 30, Greedy));
        conversation.System = "You tell stories.";
        var prompt = conversation.Prompt("And then?", 30);
        var reply = string.Concat(conversation.Reply("And then?", 30, Greedy));
        var reused = conversation.Decoder.Stats.ReusedTokens;
        Assert.InRange(reused, 1, 6); // BOS and "<|im_start|>" agree; "system" differs from "user"
        Assert.Equal(FreshReply(session, prompt, 30), reply);
    }

    [Fact]
    public void AnotherDecoderOnTheModelInvalidatesTheKeptCache()
    {
        using var session = Open();
        var conversation = new ChatConversation(Template, session.Tokenizer!, session.CreateDecoder("autoregressive"));
        _ = string.Concat(conversation.Reply("Tell me about a cat.", 30, Greedy));
        _ = session.CreateDecoder("autoregressive").Generate(session.EncodePrompt("Once upon a time"), 10, Greedy).ToList();
        var prompt = conversation.Prompt("And then?", 30);
        var reply = string.Concat(conversation.Reply("And then?", 30, Greedy));
        Assert.Equal(0, conversation.Decoder.Stats.ReusedTokens);
        Assert.Equal(FreshReply(session, prompt, 30), reply);
    }

    [Fact]
    public void AConversationLongerThanTheContextKeepsBosAndItsLatestTokens()
    {
        using var session = InferenceSession.Open(Model, "cpu", context: 96);
        var conversation = new ChatConversation(Template, session.Tokenizer!, session.CreateDecoder("autoregressive"));
        var full = Template.Encode(session.Tokenizer!, [("user", string.Join(' ', Enumerable.Repeat("The cat sat on the mat.", 20)))]);
        var prompt = conversation.Prompt(string.Join(' ', Enumerable.Repeat("The cat sat on the mat.", 20)), 32);
        Assert.Equal(96 - 32, prompt.Length);
        Assert.Equal(full.Length - prompt.Length, conversation.DroppedTokens);
        Assert.Equal([full[0], .. full[^(prompt.Length - 1)..]], prompt);
    }
}
