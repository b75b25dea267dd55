using Kangaroo.Native.Chat;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Templates;
using Microsoft.Extensions.AI;

namespace Kangaroo.Native.Tests.Chat;

/// <summary>An application that uses the engine only through <see cref="IChatClient"/>: the embedded story model
/// (which has no chat template of its own) with a ChatML template file, streaming and not.</summary>
public sealed class ChatClientTests
{
    private static readonly string TemplatePath = Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja");

    private static readonly List<ChatMessage> Conversation =
        [new(ChatRole.System, "You tell short stories."), new(ChatRole.User, "Tell me about a cat and a dog.")];

    private static IChatClient OpenClient() => KangarooChatClient.Open(SharedData.EmbeddedModel, TemplatePath, device: "cpu");

    private static async Task<(string Text, List<ChatResponseUpdate> Updates)> Stream(IChatClient client, ChatOptions options, CancellationToken cancellationToken = default)
    {
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options, cancellationToken)) updates.Add(update);
        return (string.Concat(updates.Select(u => u.Text)), updates);
    }

    [Fact]
    public async Task StreamingAndNotStreamingGiveTheSameGreedyReplyWithUsage()
    {
        using var client = OpenClient();
        var options = new ChatOptions { MaxOutputTokens = 40 };
        var response = await client.GetResponseAsync(Conversation, options);
        var (streamed, updates) = await Stream(client, options);

        Assert.False(string.IsNullOrWhiteSpace(response.Text));
        Assert.Equal(response.Text, streamed);
        Assert.True(updates.Count(u => u.Text.Length > 0) > 5, "the reply streams in pieces");
        Assert.Equal(ChatRole.Assistant, Assert.Single(response.Messages).Role);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
        Assert.Equal(40, response.Usage!.OutputTokenCount);
        Assert.True(response.Usage.InputTokenCount > 20);
        Assert.Equal(response.Usage.InputTokenCount + 40, response.Usage.TotalTokenCount);
    }

    [Fact]
    public async Task TheReplyEndsBeforeTheFirstStopSequence()
    {
        using var client = OpenClient();
        var full = (await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 60 })).Text;
        var at = full.IndexOf(' ', 20);
        var stop = full.Substring(at, 12); // longer than this tokenizer's pieces: the stream must hold back its start
        Assert.Equal(at, full.IndexOf(stop, StringComparison.Ordinal));
        var options = new ChatOptions { MaxOutputTokens = 60, StopSequences = [stop] };

        var response = await client.GetResponseAsync(Conversation, options);
        var (streamed, _) = await Stream(client, options);

        Assert.Equal(full[..at], response.Text);
        Assert.Equal(response.Text, streamed);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.True(response.Usage!.OutputTokenCount < 60);
    }

    [Fact]
    public async Task SamplingFollowsTheSeed()
    {
        using var client = OpenClient();
        ChatOptions Sampled(long seed) => new() { MaxOutputTokens = 40, Temperature = 1f, TopP = 0.95f, TopK = 40, Seed = seed };
        var first = (await client.GetResponseAsync(Conversation, Sampled(7))).Text;
        var again = (await Stream(client, Sampled(7))).Text;
        var other = (await client.GetResponseAsync(Conversation, Sampled(8))).Text;
        var greedy = (await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 40 })).Text;
        Assert.Equal(first, again);
        Assert.NotEqual(first, other);
        Assert.NotEqual(greedy, first);
    }

    [Fact]
    public async Task CancellationStopsARequest()
    {
        using var client = OpenClient();
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetResponseAsync(Conversation, new ChatOptions(), cancelled.Token));

        using var midway = new CancellationTokenSource();
        var received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in client.GetStreamingResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 200 }, midway.Token))
            {
                received++;
                await midway.CancelAsync();
            }
        });
        Assert.Equal(1, received);
        Assert.False(string.IsNullOrEmpty((await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 5 })).Text), "the client serves the next request");
    }

    [Fact]
    public async Task AContinuedConversationPrefillsOnlyItsNewTokensAndRepliesAsAFreshClient()
    {
        using var client = OpenClient();
        var options = new ChatOptions { MaxOutputTokens = 30 };
        var first = await client.GetResponseAsync(Conversation, options);
        Assert.Equal(0, first.Usage!.CachedInputTokenCount);
        List<ChatMessage> continued = [.. Conversation, .. first.Messages, new(ChatRole.User, "What happened next?")];

        var second = await client.GetResponseAsync(continued, options);
        using var fresh = OpenClient();
        Assert.Equal((await fresh.GetResponseAsync(continued, options)).Text, second.Text);
        Assert.InRange(second.Usage!.CachedInputTokenCount!.Value, first.Usage.TotalTokenCount!.Value - 8, first.Usage.TotalTokenCount.Value);
    }

    /// <summary>The reply is exactly the engine's greedy continuation of the rendered conversation.</summary>
    [Fact]
    public async Task TheReplyIsTheEnginesContinuationOfTheRenderedConversation()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var template = ChatTemplate.Load(TemplatePath);
        var rendered = template.Render(Conversation.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role.Value, ["content"] = m.Text }), addGenerationPrompt: true);
        Assert.Equal("<|im_start|>system\nYou tell short stories.<|im_end|>\n<|im_start|>user\nTell me about a cat and a dog.<|im_end|>\n<|im_start|>assistant\n", rendered);
        var prompt = session.EncodePrompt(rendered);
        var expected = session.Tokenizer!.Decode(session.CreateDecoder("autoregressive").Generate(prompt, 30, new SamplingOptions()).ToList());

        using var client = new KangarooChatClient(session, template, decoder: "autoregressive");
        var response = await client.GetResponseAsync(Conversation, new ChatOptions { MaxOutputTokens = 30 });
        Assert.Equal(expected, response.Text);
        Assert.Equal(prompt.Length, response.Usage!.InputTokenCount);
        Assert.Same(template, client.GetService<ChatTemplate>());
    }
}
