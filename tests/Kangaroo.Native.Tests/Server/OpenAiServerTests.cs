using System.ClientModel;
using System.Text.Json;
using Kangaroo.Native.Tests.Cli;
using OpenAI.Chat;

namespace Kangaroo.Native.Tests.Server;

/// <summary>The server driven by the official OpenAI .NET client (and raw HTTP where the client has no API, as
/// for legacy completions): replies, streaming, stop sequences, sampling, models and health.</summary>
public sealed class OpenAiServerTests
{
    private const string UserMessage = "Tell me about a cat and a dog.";
    private const string StoryPrompt = "Once upon a time";

    /// <summary>What <c>kangaroo generate --json</c> reports (with <c>--chat</c>: <paramref name="prompt"/> is the user message).</summary>
    public static (string Text, int PromptTokens, int GeneratedTokens, string Stop) Generate(string prompt, int maxNewTokens, bool chat)
    {
        var result = KangarooProcess.Run(["generate", "--json", "--prompt", prompt, "--max-new-tokens", $"{maxNewTokens}", "--device", "cpu", "--decoder", "autoregressive",
            .. chat ? new[] { "--chat", "--chat-template", TestServer.TemplatePath } : []]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        var json = JsonDocument.Parse(result.Stdout).RootElement;
        return (json.GetProperty("text").GetString()!, json.GetProperty("prompt_ids").GetArrayLength(), json.GetProperty("generated_ids").GetArrayLength(), json.GetProperty("stop").GetString()!);
    }

    [Fact]
    public async Task AGreedyChatReplyIsTheTextOfGenerateChatJsonStreamedOrNot()
    {
        var expected = Generate(UserMessage, 40, chat: true);
        await using var server = await TestServer.Start();
        var chat = server.Chat();
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0 };

        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage(UserMessage)], options);
        Assert.Equal(expected.Text, completion.Content.Single().Text);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(ChatMessageRole.Assistant, completion.Role);
        Assert.Equal(TestServer.ModelId, completion.Model);
        Assert.Equal(expected.PromptTokens, completion.Usage.InputTokenCount);
        Assert.Equal(40, completion.Usage.OutputTokenCount);
        Assert.Equal(expected.PromptTokens + 40, completion.Usage.TotalTokenCount);

        var pieces = new List<string>();
        var updates = new List<StreamingChatCompletionUpdate>();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(UserMessage)], options))
        {
            updates.Add(update);
            pieces.AddRange(update.ContentUpdate.Select(p => p.Text));
        }
        Assert.Equal(expected.Text, string.Concat(pieces));
        Assert.True(pieces.Count(p => p.Length > 0) > 5, "the reply streams in pieces");
        Assert.Equal(ChatFinishReason.Length, updates.Single(u => u.FinishReason is not null).FinishReason);
        var usage = updates.Single(u => u.Usage is not null).Usage; // the client asks for usage (stream_options.include_usage)
        Assert.Equal(40, usage.OutputTokenCount);
        Assert.Equal(expected.PromptTokens, usage.InputTokenCount);
        Assert.True(usage.InputTokenDetails.CachedTokenCount > 0, "the same prompt again stays in the KV cache");
    }

    [Fact]
    public async Task AGreedyCompletionIsTheTextOfGenerateJsonUntilTheStopToken()
    {
        var expected = Generate(StoryPrompt, 512, chat: false);
        Assert.Equal("stop_token", expected.Stop); // the story ends before the context does
        await using var server = await TestServer.Start();

        var (status, body, _) = await server.Post("/v1/completions", new { model = TestServer.ModelId, prompt = StoryPrompt, temperature = 0 });
        Assert.Equal(200, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = body.GetProperty("choices")[0];
        Assert.Equal(expected.Text, choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(expected.PromptTokens, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(expected.GeneratedTokens, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32()); // the stop token counts

        using var response = await Sse.Open(server.Http, "/v1/completions", new { prompt = StoryPrompt, temperature = 0, max_tokens = 30, stream = true });
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var chunks = await Sse.ReadAll(response);
        Assert.Equal(Generate(StoryPrompt, 30, chat: false).Text, Sse.Text(chunks));
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.All(chunks, c => Assert.False(c.TryGetProperty("usage", out _))); // not asked for

        var ids = JsonDocument.Parse(KangarooProcess.Run("generate", "--json", "--prompt", StoryPrompt, "--max-new-tokens", "0", "--device", "cpu").Stdout)
            .RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var byIds = await server.Post("/v1/completions", new { prompt = ids, temperature = 0, max_tokens = 30 });
        Assert.Equal(Sse.Text(chunks), byIds.Body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task AReplyEndsBeforeTheFirstStopSequence()
    {
        await using var server = await TestServer.Start();
        var chat = server.Chat();
        var full = (await chat.CompleteChatAsync([new UserChatMessage(UserMessage)], new ChatCompletionOptions { MaxOutputTokenCount = 60, Temperature = 0 })).Value.Content[0].Text;
        var at = full.IndexOf(' ', 20);
        var stop = full.Substring(at, 12); // longer than this tokenizer's pieces: the stream must hold back its start
        Assert.Equal(at, full.IndexOf(stop, StringComparison.Ordinal));
        var options = new ChatCompletionOptions { MaxOutputTokenCount = 60, Temperature = 0, StopSequences = { "never appears", stop } };

        ChatCompletion stopped = await chat.CompleteChatAsync([new UserChatMessage(UserMessage)], options);
        Assert.Equal(full[..at], stopped.Content[0].Text);
        Assert.Equal(ChatFinishReason.Stop, stopped.FinishReason);
        Assert.True(stopped.Usage.OutputTokenCount < 60);
        var streamed = new List<StreamingChatCompletionUpdate>();
        await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(UserMessage)], options)) streamed.Add(update);
        Assert.Equal(full[..at], string.Concat(streamed.SelectMany(u => u.ContentUpdate).Select(p => p.Text)));
        Assert.Equal(ChatFinishReason.Stop, streamed.Single(u => u.FinishReason is not null).FinishReason);

        async Task<JsonElement> Complete(object? stop) =>
            (await server.Post("/v1/completions", new { prompt = StoryPrompt, temperature = 0, max_tokens = 60, stop })).Body.GetProperty("choices")[0];
        var story = (await Complete(null)).GetProperty("text").GetString()!;
        foreach (var stops in new object[] { " was", new[] { "never appears", " was" } })
        {
            var cut = await Complete(stops);
            Assert.Equal(story[..story.IndexOf(" was", StringComparison.Ordinal)], cut.GetProperty("text").GetString());
            Assert.Equal("stop", cut.GetProperty("finish_reason").GetString());
        }
    }

    [Fact]
    public async Task SamplingFollowsTheSeed()
    {
        await using var server = await TestServer.Start();
        var chat = server.Chat();
#pragma warning disable OPENAI001 // Seed is marked experimental in the client
        ChatCompletionOptions Sampled(long seed) => new() { MaxOutputTokenCount = 40, Temperature = 1f, TopP = 0.95f, Seed = seed };
#pragma warning restore OPENAI001
        async Task<string> Reply(ChatCompletionOptions options) => (await chat.CompleteChatAsync([new UserChatMessage(UserMessage)], options)).Value.Content[0].Text;

        var first = await Reply(Sampled(7));
        Assert.Equal(first, await Reply(Sampled(7)));
        Assert.NotEqual(first, await Reply(Sampled(8)));
        Assert.NotEqual(await Reply(new ChatCompletionOptions { MaxOutputTokenCount = 40, Temperature = 0 }), first);
        var unseeded = new ChatCompletionOptions { MaxOutputTokenCount = 40 }; // temperature 1 and a fresh seed each time, as OpenAI's defaults
        Assert.NotEqual(await Reply(unseeded), await Reply(unseeded));
    }

    [Fact]
    public async Task ModelsListsTheOneModelAndHealthSaysWhatWasChosen()
    {
        await using var server = await TestServer.Start();
        var models = server.Client().GetOpenAIModelClient();
        var listed = (await models.GetModelsAsync()).Value;
        Assert.Equal(TestServer.ModelId, Assert.Single(listed).Id);
        Assert.Equal("kangaroo-native", listed[0].OwnedBy);
        Assert.Equal(TestServer.ModelId, (await models.GetModelAsync(TestServer.ModelId)).Value.Id);
        var missing = await Assert.ThrowsAsync<ClientResultException>(() => models.GetModelAsync("gpt-4o"));
        Assert.Equal(404, missing.Status);

        var health = await server.Health();
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.Equal(TestServer.ModelId, health.GetProperty("model").GetString());
        Assert.Equal("cpu", health.GetProperty("device").GetString());
        Assert.Equal("autoregressive", health.GetProperty("decoder").GetString());
        Assert.Equal("none", health.GetProperty("speculation").GetString());
        Assert.Equal(512, health.GetProperty("context").GetInt32());
        Assert.Equal(1, health.GetProperty("slots").GetInt32());
        Assert.Equal(0, health.GetProperty("slots_busy").GetInt32());
        Assert.Equal(16, health.GetProperty("queue_capacity").GetInt32());
    }

    [Fact]
    public async Task MessagesMayBeTextPartsAndDeveloperMessagesAreSystemMessages()
    {
        await using var server = await TestServer.Start();
        async Task<string> Reply(object messages) =>
            (await server.Post("/v1/chat/completions", new { messages, max_tokens = 20, temperature = 0 })).Body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;

        var plain = await Reply(new object[] { new { role = "system", content = "Be brief." }, new { role = "user", content = "Hi.\nBye." } });
        Assert.Equal(plain, await Reply(new object[]
        {
            new { role = "developer", content = "Be brief." },
            new { role = "user", content = new object[] { new { type = "text", text = "Hi." }, new { type = "text", text = "Bye." } } },
        }));
    }
}
