using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// Continuous batching: generations that join and leave a shared pass at different steps, with
/// different prompt and output lengths, each commit exactly llama2.c's greedy tokens, as they do alone;
/// and sequences hold their cache slots only while they generate.
/// </summary>
public sealed class BatchingTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly SamplingOptions Greedy = new();

    /// <summary>Eight golden prompts through four slots: each joins at its own step (its prompt prefilled
    /// in chunks beside the others' decoding), leaves at its own length, and frees its slot for the next.
    /// With a Kangaroo decoder, a generation's draft head follows it through the batched steps and it
    /// speculates alone once the others have left.</summary>
    [Theory]
    [InlineData("cpu", "autoregressive")]
    [InlineData("cpu", "kangaroo")]
    [InlineData("ilgpu-cpu", "autoregressive")]
    [InlineData("ilgpu-cpu", "kangaroo")]
    public void GenerationsDecodedTogetherCommitWhatTheyCommitAlone(string kind, string decoderName)
    {
        using var checkpoint = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        using var model = new LlamaModel(checkpoint, devices.Get(kind), context: 256, sequences: 4);
        using Decoder decoder = decoderName == "kangaroo"
            ? KangarooDecoders.Fixed(model, AdapterWeights.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, InferenceSession.AdapterFileName)),
                new SpeculationOptions(2, 4, 0.3f))
            : new AutoregressiveDecoder(model);
        using var batch = new AutoregressiveBatch(model);
        var cases = GoldenCase.All;
        var budgets = cases.Select((c, i) => Math.Min(c.GeneratedIds.Length, 20 + 23 * i)).ToArray();
        var tokens = cases.Select(_ => new List<int>()).ToArray();
        var active = new List<(int Case, Generation Generation)>();
        var next = 0;
        for (var step = 0; next < cases.Count || active.Count > 0; step++)
        {
            while (next < cases.Count && active.Count < 4 && step >= 3 * next)
            {
                active.Add((next, decoder.Start(cases[next].PromptIds, budgets[next], Greedy)));
                next++;
            }
            if (active.Count == 1) decoder.Step(active[0].Generation); // alone: speculating, for a Kangaroo decoder
            else if (active.Count > 1) batch.Step(active.Select(a => a.Generation).ToList());
            foreach (var (c, g) in active.ToList())
            {
                tokens[c].AddRange(g.Committed);
                if (!g.Finished) continue;
                g.Dispose();
                active.Remove((c, g));
            }
        }
        for (var c = 0; c < cases.Count; c++)
            Assert.Equal(cases[c].GeneratedIds.Take(budgets[c]), tokens[c]);
    }

    [Fact]
    public void SlotsAreHeldWhileGeneratingAndGivenBack()
    {
        using var model = TestModels.Stories();
        using var decoder = new AutoregressiveDecoder(model);
        var first = decoder.Start([1], 4, Greedy);
        var e = Assert.Throws<InvalidOperationException>(() => decoder.Start([1], 4, Greedy));
        Assert.Contains("already generating", e.Message);
        first.Dispose();
        first.Dispose(); // twice is harmless
        using var second = decoder.Start([1], 4, Greedy);
        Assert.Equal(first.Sequence.Slot, second.Sequence.Slot);
    }

    [Fact]
    public void ABatchRefusesRowsOfASequenceThatAreNotOneRun()
    {
        var batch = new Batch(8);
        batch.Add(0, 5, [1, 2]);
        batch.Add(1, 0, [3]);
        Assert.Throws<InvalidOperationException>(() => batch.Add(0, 7, [4])); // slot 0 again after another sequence
        batch.Add(1, 1, [5]); // continues the last run
        Assert.Throws<InvalidOperationException>(() => batch.Add(1, 3, [6])); // a hole in slot 1's positions
        Assert.Equal([(0, 5, 2), (1, 0, 2)], batch.Runs(0, batch.Count).ToArray());
    }
}
