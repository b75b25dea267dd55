using System.Diagnostics;
using OpenAI.Chat;

namespace Kangaroo.Native.Tests.Server;

/// <summary>Requests together: concurrency, the bounded queue, clients that go away, and stopping the server.
/// A pause after each token (<see cref="TestServer.Start"/>'s tokenDelay) stands in for a model slow enough
/// to be caught mid-generation.</summary>
public sealed class ServerSchedulingTests
{
    private const string StoryPrompt = "Once upon a time";

    private static async Task WaitFor(Func<bool> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            if (clock.Elapsed > TimeSpan.FromSeconds(30)) throw new TimeoutException($"waited 30 s for {what}");
            await Task.Delay(5);
        }
    }

    /// <summary>Requests of different lengths joining and leaving while others decode: each gets the greedy
    /// reply it gets alone, whether they take turns (one slot) or share passes (four slots), with plain
    /// decoding or with Kangaroo speculating beside the batch.</summary>
    [Theory]
    [InlineData(1, "autoregressive")]
    [InlineData(4, "autoregressive")]
    [InlineData(4, "kangaroo")]
    [InlineData(3, "auto")]
    public async Task ConcurrentRequestsGetTheGreedyRepliesTheyGetAlone(int parallel, string decoder)
    {
        await using var server = await TestServer.Start(parallel: parallel, decoder: decoder, tokenDelay: TimeSpan.FromMilliseconds(2));
        var chat = server.Chat();
        string[] messages = ["Tell me about a cat.", "Tell me about a dog.", "Where is the sun?", "Sing me a song.", "Who is there?", "Count to ten."];
        async Task<string> Reply(int i)
        {
            var options = new ChatCompletionOptions { MaxOutputTokenCount = 12 + 17 * i, Temperature = 0 };
            if (i % 2 == 0) return (await chat.CompleteChatAsync([new UserChatMessage(messages[i])], options)).Value.Content[0].Text;
            var pieces = new List<string>();
            await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage(messages[i])], options)) pieces.AddRange(update.ContentUpdate.Select(p => p.Text));
            return string.Concat(pieces);
        }

        var alone = new List<string>();
        for (var i = 0; i < messages.Length; i++) alone.Add(await Reply(i));
        Assert.Equal(messages.Length, alone.Distinct().Count());
        var busiest = 0;
        using var watching = new CancellationTokenSource();
        var watch = Task.Run(async () =>
        {
            while (!watching.IsCancellationRequested)
            {
                busiest = Math.Max(busiest, server.Status.Busy);
                await Task.Delay(1);
            }
        });
        var together = await Task.WhenAll(Enumerable.Range(0, messages.Length).Select(async i =>
        {
            await Task.Delay(15 * i); // they join while others decode
            return await Reply(i);
        }));
        await watching.CancelAsync();
        await watch;
        Assert.Equal(alone, together);
        Assert.InRange(busiest, 1, parallel); // never more than the slots
        if (parallel > 1) Assert.True(busiest > 1, "no two requests were ever decoded together");
        await server.WaitIdle(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task AClientThatDisconnectsMidStreamFreesItsSlotWithinAStep()
    {
        var step = TimeSpan.FromMilliseconds(25);
        await using var server = await TestServer.Start(tokenDelay: step);
        var chat = server.Chat();
        using var disconnect = new CancellationTokenSource();
        var received = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            // 200 tokens: at least 5 s of generation left when the client goes away.
            await foreach (var update in chat.CompleteChatStreamingAsync([new UserChatMessage("Tell me a long story.")],
                               new ChatCompletionOptions { MaxOutputTokenCount = 200, Temperature = 0 }, disconnect.Token))
                if (update.ContentUpdate.Count > 0 && ++received == 3) await disconnect.CancelAsync();
        });
        Assert.Equal(3, received);
        var freed = await server.WaitIdle(TimeSpan.FromSeconds(3));

        var clock = Stopwatch.StartNew();
        var next = await chat.CompleteChatAsync([new UserChatMessage("Hello")], new ChatCompletionOptions { MaxOutputTokenCount = 4, Temperature = 0 });
        Assert.Equal(4, next.Value.Usage.OutputTokenCount);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"the next request took {clock.Elapsed} (the slot was freed after {freed})");
    }

    [Fact]
    public async Task AFullQueueIs503WithRetryAfterAndAWaitingClientThatLeavesFreesItsPlace()
    {
        await using var server = await TestServer.Start(queueCapacity: 1, tokenDelay: TimeSpan.FromMilliseconds(200));
        // 300 tokens, 60 s: it runs until this test drops it, however slow a loaded machine makes the steps below.
        using var running = await Sse.Open(server.Http, "/v1/completions", new { prompt = StoryPrompt, max_tokens = 300, temperature = 0, stream = true });
        await WaitFor(() => server.Status.Busy == 1, "the first request to run");

        var waiting = Sse.Open(server.Http, "/v1/completions", new { prompt = StoryPrompt, max_tokens = 2, stream = true });
        await WaitFor(() => server.Status.Waiting == 1, "the second request to wait");

        var (status, body, response) = await server.Post("/v1/completions", new { prompt = StoryPrompt, max_tokens = 2 });
        Assert.Equal(503, status);
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter!.Delta);
        Assert.Equal("server_error", body.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal("queue_full", body.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("busy", body.GetProperty("error").GetProperty("message").GetString());

        // The waiting client goes away: its place is free at once, while the first request still runs.
        (await waiting).Dispose(); // its headers came at once (a stream starts before its turn); dropping it closes the connection
        await WaitFor(() => server.Status.Waiting == 0, "the waiting request to leave the queue");
        Assert.Equal(1, server.Status.Busy);
        var queued = server.Post("/v1/completions", new { prompt = StoryPrompt, max_tokens = 2, temperature = 0 });
        await WaitFor(() => server.Status.Waiting == 1, "a new request to take the free place");

        running.Dispose();
        Assert.Equal(200, (await queued).Status);
        await server.WaitIdle(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task StoppingFinishesTheRequestsInFlightThenRefusesConnections()
    {
        await using var server = await TestServer.Start(tokenDelay: TimeSpan.FromMilliseconds(10));
        var expected = (await server.Post("/v1/completions", new { prompt = StoryPrompt, max_tokens = 60, temperature = 0 })).Body.GetProperty("choices")[0].GetProperty("text").GetString();
        using var response = await Sse.Open(server.Http, "/v1/completions", new { prompt = StoryPrompt, max_tokens = 60, temperature = 0, stream = true });
        var events = new List<string>();
        await using (var reader = Sse.Events(response).GetAsyncEnumerator())
        {
            Assert.True(await reader.MoveNextAsync());
            events.Add(reader.Current);
            var stopping = server.App.StopAsync(); // as SIGTERM does
            while (await reader.MoveNextAsync()) events.Add(reader.Current);
            await stopping;
        }
        Assert.Equal("[DONE]", events[^1]);
        var chunks = events[..^1].Select(e => JsonDocument.Parse(e).RootElement).ToList();
        Assert.Equal("length", chunks[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.Equal(expected, Sse.Text(chunks));
        using var fresh = new HttpClient();
        await Assert.ThrowsAsync<HttpRequestException>(() => fresh.GetAsync(new Uri(server.BaseAddress, "health")));
    }

    [Fact]
    public async Task StoppingCancelsWhatOutlastsTheShutdownTimeout()
    {
        await using var server = await TestServer.Start(tokenDelay: TimeSpan.FromMilliseconds(50), shutdownTimeout: TimeSpan.FromSeconds(1));
        using var response = await Sse.Open(server.Http, "/v1/completions", new { prompt = StoryPrompt, max_tokens = 200, temperature = 0, stream = true });
        var events = new List<string>();
        var clock = Stopwatch.StartNew();
        await using (var reader = Sse.Events(response).GetAsyncEnumerator())
        {
            Assert.True(await reader.MoveNextAsync());
            var stopping = server.App.StopAsync();
            try
            {
                while (await reader.MoveNextAsync()) events.Add(reader.Current);
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                // the connection was cut
            }
            await stopping;
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(8), $"stopping took {clock.Elapsed}; the generation alone would take 10 s");
        Assert.DoesNotContain("[DONE]", events);
        await server.WaitIdle(TimeSpan.FromSeconds(3));
    }
}
