namespace Kangaroo.Native.Tests.Hostile;

/// <summary>The library's answers to misuse: clear exceptions for bad arguments, a disposed session,
/// two generations on one model at once; generation stops when its token is cancelled.</summary>
public sealed class LibraryMisuseTests
{
    private static readonly SamplingOptions Greedy = new();

    [Fact]
    public void ArgumentsAreValidated()
    {
        Assert.Throws<ArgumentException>(() => InferenceSession.Open("", "cpu"));
        Assert.Throws<ArgumentNullException>(() => InferenceSession.Open(null!, "cpu"));
        Assert.Throws<ArgumentException>(() => InferenceSession.Open(SharedData.EmbeddedModel, ""));
        Assert.Throws<ArgumentException>(() => InferenceSession.Open(SharedData.EmbeddedModel, "cpu", tokenizerPath: ""));
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        Assert.Throws<ArgumentNullException>(() => session.EncodePrompt(null!));
        var decoder = session.CreateDecoder("autoregressive");
        Assert.Throws<ArgumentNullException>(() => decoder.Generate(null!, 4, Greedy));
        Assert.Throws<ArgumentNullException>(() => decoder.Generate([1], 4, null!));
        Assert.Throws<ArgumentOutOfRangeException>(() => decoder.Generate([1], -1, Greedy));
        Assert.Throws<ArgumentException>(() => decoder.Generate([1], 4, new SamplingOptions(TopP: 2)));
    }

    [Fact]
    public void DisposedSessionRefusesClearly()
    {
        var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var decoder = session.CreateDecoder("early-exit", exitLayer: 2);
        session.Dispose();
        session.Dispose(); // twice is harmless
        Assert.Throws<ObjectDisposedException>(() => decoder.Generate([1], 4, Greedy).ToList());
        Assert.Throws<ObjectDisposedException>(() => session.EncodePrompt("Once"));
        Assert.Throws<ObjectDisposedException>(() => session.CreateDecoder("autoregressive"));
    }

    [Fact]
    public async Task SecondGenerationOnOneModelAtOnceIsRefused()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var decoder = session.CreateDecoder("autoregressive");
        using var firstTokenOut = new SemaphoreSlim(0);
        using var secondTried = new SemaphoreSlim(0);
        var first = Task.Run(() =>
        {
            foreach (var _ in decoder.Generate([1], 8, Greedy))
            {
                firstTokenOut.Release();
                secondTried.Wait();
            }
        });
        await firstTokenOut.WaitAsync();
        var e = Assert.Throws<InvalidOperationException>(() => decoder.Generate([1], 8, Greedy).ToList());
        Assert.Contains("already generating", e.Message);
        Assert.Throws<InvalidOperationException>(() => session.CreateDecoder("early-exit", exitLayer: 2).Generate([1], 8, Greedy).ToList());
        secondTried.Release(8);
        await first;
        Assert.Equal(8, decoder.Generate([1], 8, Greedy).Count()); // the model is free again

        using (var open = decoder.Generate([1], 8, Greedy).GetEnumerator())
        {
            Assert.True(open.MoveNext());
            Assert.Throws<InvalidOperationException>(() => decoder.Generate([1], 8, Greedy).ToList());
        }
        Assert.Equal(8, decoder.Generate([1], 8, Greedy).Count());
    }

    [Theory, DeviceData("cpu"), DeviceData("opencl")]
    public void DisposedDecodersGiveTheirDeviceMemoryBack(string kind)
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, kind);
        var before = session.Device.AllocatedBytes;
        foreach (var name in new[] { "autoregressive", "kangaroo", "early-exit", "auto" })
        {
            var decoder = session.CreateDecoder(name);
            Assert.True(session.Device.AllocatedBytes > before, $"{name} holds buffers");
            Assert.Equal(8, decoder.Generate([1, 403], 8, Greedy).Count());
            decoder.Dispose();
            Assert.Equal(before, session.Device.AllocatedBytes);
            Assert.Throws<ObjectDisposedException>(() => decoder.Generate([1], 4, Greedy));
            decoder.Dispose(); // a second time does nothing
            Assert.Equal(before, session.Device.AllocatedBytes);
        }
    }

    [Fact]
    public void CancellationStopsGenerationBetweenRounds()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        foreach (var name in new[] { "autoregressive", "early-exit", "kangaroo" })
        {
            var decoder = session.CreateDecoder(name, exitLayer: name == "kangaroo" ? null : 2);
            using var cancel = new CancellationTokenSource();
            var seen = new List<int>();
            Assert.Throws<OperationCanceledException>(() =>
            {
                foreach (var token in decoder.Generate([1], 400, Greedy, cancel.Token))
                {
                    seen.Add(token);
                    if (seen.Count == 3) cancel.Cancel();
                }
            });
            Assert.InRange(seen.Count, 3, 3 + 7); // the round in progress is finished, no more
            Assert.Equal(5, decoder.Generate([1], 5, Greedy).Count());
        }
    }
}
