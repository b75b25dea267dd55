using Kangaroo.Native.Engine;
using Kangaroo.Native.Server.Scheduling;

namespace Kangaroo.Native.Tests.Server;

/// <summary>The scheduler without HTTP: what it gives out, and what disposing it does to what it holds.</summary>
public sealed class BatchSchedulerTests
{
    private static GenerationRequest Request(InferenceSession session, int maxTokens, params string[] stops) =>
        new(session.EncodePrompt("Once upon a time"), maxTokens, new SamplingOptions(), stops);

    [Fact]
    public async Task UpdatesAreTheDecodersTextThenOneFinish()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var prompt = session.EncodePrompt("Once upon a time");
        using (var decoder = session.CreateDecoder("autoregressive"))
        {
            var expected = session.Tokenizer!.Decode(decoder.Generate(prompt, 20, new SamplingOptions()).ToList());
            await using var scheduler = new BatchScheduler(session, session.CreateDecoder("autoregressive"), queueCapacity: 4);
            var updates = new List<GenerationUpdate>();
            await foreach (var update in scheduler.Submit(Request(session, 20))) updates.Add(update);
            Assert.Equal(expected, string.Concat(updates.OfType<GenerationText>().Select(t => t.Text)));
            Assert.All(updates.OfType<GenerationText>(), t => Assert.NotEmpty(t.Text));
            Assert.Equal(new GenerationFinished(FinishReason.Length, prompt.Length, 20, 0), updates[^1]);
            Assert.Single(updates.OfType<GenerationFinished>());
        }
    }

    [Fact]
    public async Task DisposingCancelsWhatItHoldsAndRefusesMore()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var scheduler = new BatchScheduler(session, session.CreateDecoder("autoregressive"), queueCapacity: 4) { TokenDelay = TimeSpan.FromMilliseconds(50) };
        var running = scheduler.Submit(Request(session, 200)).GetAsyncEnumerator();
        Assert.True(await running.MoveNextAsync());
        var waiting = scheduler.Submit(Request(session, 5)).GetAsyncEnumerator();
        Assert.Equal(1, scheduler.Status.Waiting);

        await scheduler.DisposeAsync(); // within a step, not the 10 s the running generation would take
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { while (await running.MoveNextAsync()) { } });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => { while (await waiting.MoveNextAsync()) { } });
        await running.DisposeAsync();
        await waiting.DisposeAsync();
        Assert.Throws<ObjectDisposedException>(() => scheduler.Submit(Request(session, 5)));
        Assert.Equal((0, 0), (scheduler.Status.Busy, scheduler.Status.Waiting));
    }
}
