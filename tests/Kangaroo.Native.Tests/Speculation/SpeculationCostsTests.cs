using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Tests.Engine;

namespace Kangaroo.Native.Tests.Speculation;

/// <summary>Measured costs of a round's parts: their shape, the byte ratio against a count made from
/// the config, caches left as they were, and the on-disk cache.</summary>
public sealed class SpeculationCostsTests
{
    [Theory]
    [InlineData(1, null)]
    [InlineData(4, 100)]
    public void MeasureTimesEveryPartAndCountsDraftBytes(int exitLayer, int? draftVocab)
    {
        using var model = TestModels.Stories();
        var adapter = AdapterWeights.Random(model.Config.Dim, exitLayer, 1);
        if (draftVocab is { } k) adapter.DraftVocabulary = Enumerable.Range(0, k).ToArray();
        using var head = new AdapterHead(model, adapter);
        var costs = SpeculationCosts.Measure(model, head, exitLayer, maxDrafts: 5);

        Assert.Equal(6, costs.VerifyMs.Length);
        Assert.All([costs.AutoregressiveStepMs, costs.ShallowStepMs, costs.DraftStepMs, .. costs.VerifyMs], ms => Assert.True(ms > 0 && ms < 1000));
        Assert.Equal(costs.DraftStepMs / costs.AutoregressiveStepMs, costs.DraftRatio, 9);
        Assert.Equal(costs.VerifyMs[3] / costs.AutoregressiveStepMs, costs.VerifyRatio[3], 9);
        Assert.Equal(3 * costs.DraftStepMs + costs.ShallowStepMs + costs.VerifyMs[3], costs.RoundMs(3), 9);

        // Bytes from the config alone (f32): a block is two norms, q|k|v, o, gate|up and down.
        var c = model.Config;
        long block = 2 * c.Dim + c.Dim * (c.Dim + 2 * c.KvDim) + c.Dim * c.Dim + 3L * c.Dim * c.HiddenDim;
        long finalNormAndHead = c.Dim + (long)c.VocabSize * c.Dim;
        long adapterBytes = 2 * c.Dim + 4L * c.Dim * c.Dim + (long)(draftVocab ?? c.VocabSize) * c.Dim;
        Assert.Equal((double)(exitLayer * block + adapterBytes) / (c.Layers * block + finalNormAndHead), costs.DraftByteRatio, 9);

        Assert.Equal(0, model.Cache.Length(0, 0));
        Assert.Equal(0, head.Cached(0));
    }

    [Fact]
    public void CacheReturnsWhatWasStoredUnderTheSameKeyOnly()
    {
        using var directory = new TempDirectory();
        var cache = new SpeculationCostCache(directory.File("costs"));
        var costs = new SpeculationCosts(1.5, 0.25, 0.5, [1, 2, 3], 0.3);
        Assert.Null(cache.Get("model|cpu"));
        cache.Put("model|cpu", costs);
        var read = cache.Get("model|cpu");
        Assert.NotNull(read);
        Assert.Equal(costs.AutoregressiveStepMs, read.AutoregressiveStepMs);
        Assert.Equal(costs.VerifyMs, read.VerifyMs);
        Assert.Equal(costs.DraftByteRatio, read.DraftByteRatio);
        Assert.Null(cache.Get("model|opencl"));

        foreach (var file in Directory.GetFiles(cache.Directory)) File.WriteAllText(file, "{ truncated");
        Assert.Null(cache.Get("model|cpu"));
    }

    [Fact]
    public void AnUnwritableCacheOnlyMeansNoCaching()
    {
        using var directory = new TempDirectory();
        File.WriteAllText(directory.File("file"), "");
        var cache = new SpeculationCostCache(directory.File("file")); // a file where the folder should be
        cache.Put("key", new SpeculationCosts(1, 1, 1, [1], 1));
        Assert.Null(cache.Get("key"));
    }
}
