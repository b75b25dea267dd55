using Kangaroo.Native.Engine.Training;
using Kangaroo.Native.Kernels.Cpu;

namespace Kangaroo.Native.Tests.Training;

/// <summary>Training on the embedded stories260K with self-generated data: it learns (held-out loss
/// falls), it is reproducible, it stops cleanly, and it rejects bad settings with clear errors.</summary>
public sealed class AdapterTrainerTests
{
    private static LlamaModel OpenModel()
    {
        using var checkpoint = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        return new LlamaModel(checkpoint, new CpuDevice());
    }

    private static List<int[]> Generate(LlamaModel model, int count, int seqLen, int seed) =>
        TrainingData.SelfGenerate(model, count, seqLen, [[model.Config.BosId, 403, 407, 261, 378]], seed);

    [Fact]
    public void ShortRunReducesHeldOutLoss()
    {
        using var model = OpenModel();
        var options = new TrainingOptions(ExitLayer: 2, SeqLen: 64, Epochs: 3, LearningRate: 1e-2f, Batch: 2, Seed: 7);
        var data = Generate(model, 16, options.SeqLen, options.Seed);
        using var trainer = new AdapterTrainer(model, options);
        var reports = new List<EpochReport>();
        var steps = 0;
        var result = trainer.Train(data, _ => steps++, (report, _) => reports.Add(report));

        Assert.False(result.Cancelled);
        Assert.Equal([1, 2, 3], reports.Select(r => r.Epoch));
        Assert.Equal(3 * 7, steps); // 16 sequences, 2 held out, 14 in batches of 2
        var before = result.Epochs[0].HeldOut;
        var after = result.Epochs[^1].HeldOut;
        Assert.True(after.MeanLoss < before.MeanLoss - 0.5, $"held-out loss {before.MeanLoss:F4} -> {after.MeanLoss:F4}");
        Assert.True(after.MeanOverlap > before.MeanOverlap, $"overlap {before.MeanOverlap:F4} -> {after.MeanOverlap:F4}");
        Assert.Equal(after.MeanLoss.ToString("G6", System.Globalization.CultureInfo.InvariantCulture), result.Weights.Metadata["kangaroo.train.heldout_loss"]);
        Assert.Equal(2, result.Weights.ExitLayer);
    }

    [Fact]
    public void SameSeedGivesBitIdenticalAdapter()
    {
        using var model = OpenModel();
        AdapterWeights Run(int seed)
        {
            var options = new TrainingOptions(ExitLayer: 3, SeqLen: 32, Epochs: 2, LearningRate: 1e-2f, Batch: 3, Seed: seed);
            var data = Generate(model, 8, options.SeqLen, seed);
            using var trainer = new AdapterTrainer(model, options);
            return trainer.Train(data).Weights;
        }
        var first = Run(11);
        var second = Run(11);
        for (var i = 0; i < first.Parameters.Count; i++) Assert.Equal(first.Parameters[i], second.Parameters[i]);
        Assert.NotEqual(first.Query, Run(12).Query);
    }

    [Fact]
    public void SelfGenerationIsSeededAndBounded()
    {
        using var model = OpenModel();
        var a = Generate(model, 4, 24, 5);
        Assert.Equal(a, Generate(model, 4, 24, 5));
        Assert.NotEqual(a, Generate(model, 4, 24, 6));
        Assert.All(a, s => Assert.InRange(s.Length, 2, 24));
        Assert.All(a, s => Assert.Equal(model.Config.BosId, s[0]));
        Assert.Equal([1, 403, 407, 261, 378], a[1][..5]); // every other sequence starts from the prompt
    }

    [Fact]
    public void LowerSelfGenerationTemperatureFollowsGreedyLonger()
    {
        using var model = OpenModel();
        int[] prompt = [model.Config.BosId, 403, 407, 261, 378];
        const int seqLen = 64;
        int[] greedy = [.. prompt, .. new AutoregressiveDecoder(model).Generate(prompt, seqLen - prompt.Length, new SamplingOptions())];
        double MeanGreedyPrefix(float temperature) => TrainingData.SelfGenerate(model, 24, seqLen, [prompt], seed: 2, temperature)
            .Where(s => s.AsSpan().StartsWith(prompt)) // the sequences from the prompt, not from BOS alone
            .Average(s => s.Zip(greedy).TakeWhile(p => p.First == p.Second).Count() - prompt.Length);
        var hot = MeanGreedyPrefix(1f);
        var cool = MeanGreedyPrefix(0.3f);
        Assert.True(cool > hot + 5, $"tokens agreeing with greedy before the first difference: {cool:F1} at temperature 0.3, {hot:F1} at 1");
    }

    [Theory]
    [InlineData(0f)]
    [InlineData(-1f)]
    [InlineData(float.NaN)]
    public void SelfGenerationTemperatureMustBePositive(float temperature)
    {
        using var model = OpenModel();
        var e = Assert.Throws<ArgumentException>(() => TrainingData.SelfGenerate(model, 2, 16, [], seed: 1, temperature));
        Assert.StartsWith($"--self-generate-temperature {temperature} must be positive", e.Message);
    }

    [Fact]
    public void CancellationKeepsTheLastFinishedEpoch()
    {
        using var model = OpenModel();
        var options = new TrainingOptions(ExitLayer: 1, SeqLen: 32, Epochs: 5, LearningRate: 1e-2f, Batch: 2, Seed: 3);
        var data = Generate(model, 6, options.SeqLen, 3);
        using var trainer = new AdapterTrainer(model, options);
        using var cancel = new CancellationTokenSource();
        AdapterWeights? checkpoint = null;
        var result = trainer.Train(data, epochEnd: (report, weights) =>
        {
            checkpoint = weights;
            if (report.Epoch == 2) cancel.Cancel();
        }, cancel: cancel.Token);
        Assert.True(result.Cancelled);
        Assert.Equal(2, result.Epochs[^1].Epoch);
        Assert.Same(checkpoint, result.Weights);
    }

    [Fact]
    public void LearningRateWarmsUpThenDecays()
    {
        using var model = OpenModel();
        using var trainer = new AdapterTrainer(model, new TrainingOptions(ExitLayer: 1, SeqLen: 8, LearningRate: 1f));
        Assert.Equal(0.25f, trainer.LearningRate(1, 100, 4));
        Assert.Equal(1f, trainer.LearningRate(4, 100, 4));
        Assert.Equal(1f, trainer.LearningRate(5, 100, 4));
        Assert.Equal(95f / 96f, trainer.LearningRate(6, 100, 4));
        Assert.Equal(1f / 96f, trainer.LearningRate(100, 100, 4));
        Assert.Equal(1f, trainer.LearningRate(1, 10, 0));
    }

    [Theory]
    [InlineData(0, 64, "--exit-layer 0 must be in 1..4")]
    [InlineData(5, 64, "--exit-layer 5 must be in 1..4")]
    [InlineData(2, 513, "--seq-len 513 is past the model's context of 512")]
    [InlineData(2, 1, "--seq-len 1 must be at least 2")]
    public void BadOptionsAreRejected(int exitLayer, int seqLen, string message)
    {
        using var model = OpenModel();
        var e = Assert.Throws<ArgumentException>(() => new AdapterTrainer(model, new TrainingOptions(exitLayer, seqLen)));
        Assert.Contains(message, e.Message);
    }

    [Fact]
    public void TooFewSequencesAreRejected()
    {
        using var model = OpenModel();
        using var trainer = new AdapterTrainer(model, new TrainingOptions(1, 16));
        Assert.Contains("need at least 2", Assert.Throws<ArgumentException>(() => trainer.Train([[1, 2, 3]])).Message);
    }
}
