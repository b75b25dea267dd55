using System.Diagnostics;
using System.Globalization;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Training;

/// <summary>Settings of an adapter training run. Defaults suit a small model trained in minutes;
/// the reference (7B) settings are lr 3e-5..5e-5 with 2000 warm-up steps and 10-20 epochs.</summary>
public sealed record TrainingOptions(
    int ExitLayer,
    int SeqLen = 256,
    int Epochs = 10,
    float LearningRate = 3e-3f,
    int Batch = 8,
    int Seed = 1,
    float WeightDecay = 0.01f,
    float Clip = 0.5f,
    float WarmupFraction = 0.05f,
    float HeldOutFraction = 0.1f,
    float Beta1 = 0.9f,
    float Beta2 = 0.95f,
    float Epsilon = 1e-8f)
{
    /// <summary>Returns the options if they fit a model of <paramref name="layers"/> layers and <paramref name="context"/> positions, else throws <see cref="ArgumentException"/>.</summary>
    public TrainingOptions Validate(int layers, int context)
    {
        if (ExitLayer < 1 || ExitLayer >= layers) throw new ArgumentException($"--exit-layer {ExitLayer} must be in 1..{layers - 1} for a {layers}-layer model");
        if (SeqLen < 2) throw new ArgumentException($"--seq-len {SeqLen} must be at least 2");
        if (SeqLen > context) throw new ArgumentException($"--seq-len {SeqLen} is past the model's context of {context} positions");
        if (Epochs < 1) throw new ArgumentException($"--epochs {Epochs} must be >= 1");
        if (Batch < 1) throw new ArgumentException($"--batch {Batch} must be >= 1");
        if (!(LearningRate > 0) || !float.IsFinite(LearningRate)) throw new ArgumentException($"--lr {LearningRate} must be positive");
        if (!(WeightDecay >= 0)) throw new ArgumentException($"--weight-decay {WeightDecay} must be >= 0");
        if (!(Clip >= 0)) throw new ArgumentException($"--clip {Clip} must be >= 0 (0 = no clipping)");
        if (!(WarmupFraction >= 0 && WarmupFraction < 1)) throw new ArgumentException($"--warmup {WarmupFraction} must be in [0, 1)");
        if (!(HeldOutFraction > 0 && HeldOutFraction < 1)) throw new ArgumentException($"held-out fraction {HeldOutFraction} must be in (0, 1)");
        return this;
    }
}

/// <summary>Where a run is, reported after every optimiser step.</summary>
public sealed record TrainingProgress(int Epoch, int Epochs, int Step, int TotalSteps, LossSums Recent, double TokensPerSecond, float LearningRate);

/// <summary>The state at the end of an epoch (epoch 0: before training): metrics on the training
/// positions seen this epoch and on the held-out sequences.</summary>
public sealed record EpochReport(int Epoch, int Step, LossSums Train, LossSums HeldOut, TimeSpan Elapsed, double TokensPerSecond);

/// <summary>What <see cref="AdapterTrainer.Train"/> produced.</summary>
/// <param name="Weights">the trained adapter, with the training settings and metrics in its metadata.</param>
/// <param name="Epochs">the report of each epoch, epoch 0 (before training) first.</param>
/// <param name="Cancelled">whether the run was cancelled; the weights are then those of the last completed epoch.</param>
public sealed record TrainingResult(AdapterWeights Weights, IReadOnlyList<EpochReport> Epochs, bool Cancelled);

/// <summary>
/// Trains a Kangaroo adapter by self-distillation from a frozen target (Liu et al., arXiv:2404.18911; docs/kangaroo.md, "Training
/// the adapter"). For each sequence the target runs once: its residual stream after the exit layer is
/// the adapter's input, and its next-token distribution p at every position is the label. The adapter
/// (an <see cref="AdapterGraph"/>) minimises -sum_v p_v log q_v averaged over the positions of a
/// batch, with AdamW, linear warm-up then linear decay, and gradient value clipping. A run is a pure
/// function of the model, the sequences and the options (the seed fixes initialisation, the held-out
/// split and the order of batches).
/// </summary>
public sealed class AdapterTrainer : IDisposable
{
    private readonly LlamaModel _model;
    private readonly TrainingOptions _options;
    private readonly AdapterGraph _graph;
    private readonly DeviceTensor _residual, _states, _targets;

    /// <summary>A trainer of an adapter for <paramref name="model"/>, from <paramref name="initial"/> or a seeded random one; allocates its buffers on the model's device.</summary>
    public AdapterTrainer(LlamaModel model, TrainingOptions options, AdapterWeights? initial = null)
    {
        _model = model;
        _options = options.Validate(model.Layers, model.Context);
        var c = model.Config;
        initial ??= AdapterWeights.Random(c.Dim, options.ExitLayer, options.Seed);
        initial.CheckFits(c, model.Fingerprint, "initial adapter");
        if (initial.ExitLayer != options.ExitLayer) throw new ArgumentException($"initial adapter is for exit layer {initial.ExitLayer}, not {options.ExitLayer}");
        _graph = new AdapterGraph(model.Device, initial, c.Heads, c.NormEps, model.LmHead, model.Rotary, options.SeqLen);
        _residual = model.AllocateResidual(options.SeqLen);
        _states = model.AllocateResidual(options.SeqLen);
        _targets = model.AllocateLogits(options.SeqLen);
    }

    /// <summary>The validated options.</summary>
    public TrainingOptions Options => _options;

    /// <summary>Splits <paramref name="sequences"/> into training and held-out sets (by the seed).</summary>
    public (List<int[]> Train, List<int[]> HeldOut) Split(IReadOnlyList<int[]> sequences)
    {
        if (sequences.Count < 2) throw new ArgumentException($"{sequences.Count} training sequence(s): need at least 2 (one is held out for evaluation)");
        foreach (var s in sequences)
            if (s.Length < 2 || s.Length > _options.SeqLen) throw new ArgumentException($"a sequence of {s.Length} tokens is outside 2..{_options.SeqLen}");
        var order = Enumerable.Range(0, sequences.Count).ToArray();
        new Random(_options.Seed).Shuffle(order);
        var heldOut = Math.Clamp((int)Math.Round(sequences.Count * _options.HeldOutFraction), 1, sequences.Count - 1);
        return (order.Skip(heldOut).Select(i => sequences[i]).ToList(), order.Take(heldOut).Select(i => sequences[i]).ToList());
    }

    /// <summary>Runs the whole training. <paramref name="epochEnd"/> gets each epoch's report and the
    /// adapter at that point (the place to write a checkpoint). Cancellation stops between steps and
    /// returns the adapter of the last completed epoch.</summary>
    public TrainingResult Train(IReadOnlyList<int[]> sequences, Action<TrainingProgress>? progress = null,
        Action<EpochReport, AdapterWeights>? epochEnd = null, CancellationToken cancel = default)
    {
        var (train, heldOut) = Split(sequences);
        var o = _options;
        var stepsPerEpoch = (train.Count + o.Batch - 1) / o.Batch;
        var totalSteps = stepsPerEpoch * o.Epochs;
        var warmup = (int)Math.Round(totalSteps * o.WarmupFraction);
        var clock = Stopwatch.StartNew();
        long trainedPositions = 0;
        var reports = new List<EpochReport> { new(0, 0, default, Evaluate(heldOut), TimeSpan.Zero, 0) };
        var weights = Finish(_graph.Export(), reports, 0, train.Count, heldOut.Count);
        var step = 0;
        for (var epoch = 1; epoch <= o.Epochs; epoch++)
        {
            var order = train.ToArray();
            new Random(unchecked(o.Seed * 7919 + epoch)).Shuffle(order);
            var epochSums = default(LossSums);
            for (var first = 0; first < order.Length; first += o.Batch)
            {
                if (cancel.IsCancellationRequested) return new TrainingResult(weights, reports, Cancelled: true);
                var batch = order.AsSpan(first, Math.Min(o.Batch, order.Length - first));
                var positions = 0;
                foreach (var s in batch) positions += s.Length;
                var batchSums = default(LossSums);
                foreach (var sequence in batch)
                {
                    RunTarget(sequence);
                    batchSums += _graph.Accumulate(_states, _targets, sequence.Length, 1f / positions, backward: true);
                }
                step++;
                RequireFinite(batchSums, $"step {step} (epoch {epoch})");
                var lr = LearningRate(step, totalSteps, warmup);
                _graph.Step(new AdamWStep(lr, o.Beta1, o.Beta2, o.Epsilon, o.WeightDecay, step), o.Clip);
                epochSums += batchSums;
                trainedPositions += positions;
                progress?.Invoke(new TrainingProgress(epoch, o.Epochs, step, totalSteps, batchSums, trainedPositions / clock.Elapsed.TotalSeconds, lr));
            }
            var report = new EpochReport(epoch, step, epochSums, RequireFinite(Evaluate(heldOut), $"the held-out evaluation of epoch {epoch}"),
                clock.Elapsed, trainedPositions / clock.Elapsed.TotalSeconds);
            reports.Add(report);
            weights = Finish(_graph.Export(), reports, step, train.Count, heldOut.Count);
            epochEnd?.Invoke(report, weights);
        }
        return new TrainingResult(weights, reports, Cancelled: false);
    }

    /// <summary>Stops training when the loss is NaN or infinite: the adapter has diverged, and nothing
    /// after this point (no checkpoint) may be saved.</summary>
    private LossSums RequireFinite(LossSums sums, string where) =>
        double.IsFinite(sums.Loss) ? sums
        : throw new InvalidOperationException(
            $"training diverged: the loss is {sums.MeanLoss} at {where}; try a lower --lr than {_options.LearningRate.ToString(CultureInfo.InvariantCulture)}");

    /// <summary>Linear warm-up to the peak rate over <paramref name="warmup"/> steps (1-based), then
    /// linear decay from the peak at step warmup + 1 to peak / (decay steps) at the last step.</summary>
    public float LearningRate(int step, int totalSteps, int warmup)
    {
        var peak = _options.LearningRate;
        if (step <= warmup) return peak * step / warmup;
        return peak * (totalSteps - step + 1) / (totalSteps - warmup);
    }

    /// <summary>Mean loss and metrics of the current adapter over <paramref name="sequences"/> (no update).</summary>
    public LossSums Evaluate(IEnumerable<int[]> sequences)
    {
        var sums = default(LossSums);
        foreach (var sequence in sequences)
        {
            RunTarget(sequence);
            sums += _graph.Accumulate(_states, _targets, sequence.Length, 0f, backward: false);
        }
        return sums;
    }

    /// <summary>The frozen target over one sequence: exit-layer states into _states, next-token
    /// distributions p into _targets.</summary>
    private void RunTarget(int[] tokens)
    {
        var m = _model;
        var rows = tokens.Length;
        var dim = m.Config.Dim;
        using var sequence = m.StartSequence();
        sequence.Truncate(0);
        var batch = new Batch(rows);
        batch.Add(sequence.Slot, 0, tokens);
        m.Embed(tokens, _residual);
        m.RunBlocks(0, _options.ExitLayer, _residual, batch);
        m.Device.Copy(_residual.Slice(0, rows * dim), _states.Slice(0, rows * dim));
        m.RunBlocks(_options.ExitLayer, m.Layers, _residual, batch);
        m.Logits(_residual, rows, _targets);
        m.Device.Softmax(_targets, rows, m.Config.VocabSize, 1f);
    }

    private AdapterWeights Finish(AdapterWeights weights, List<EpochReport> reports, int steps, int trainSequences, int heldOutSequences)
    {
        var o = _options;
        var last = reports[^1];
        string F(double v) => v.ToString("G6", CultureInfo.InvariantCulture);
        var meta = weights.Metadata;
        meta["kangaroo.train.seq_len"] = o.SeqLen.ToString(CultureInfo.InvariantCulture);
        meta["kangaroo.train.epochs"] = last.Epoch.ToString(CultureInfo.InvariantCulture);
        meta["kangaroo.train.steps"] = steps.ToString(CultureInfo.InvariantCulture);
        meta["kangaroo.train.lr"] = F(o.LearningRate);
        meta["kangaroo.train.batch"] = o.Batch.ToString(CultureInfo.InvariantCulture);
        meta["kangaroo.train.seed"] = o.Seed.ToString(CultureInfo.InvariantCulture);
        meta["kangaroo.train.optimizer"] = $"adamw betas=({F(o.Beta1)},{F(o.Beta2)}) eps={F(o.Epsilon)} weight_decay={F(o.WeightDecay)}";
        meta["kangaroo.train.schedule"] = $"linear warmup {F(o.WarmupFraction)} of steps, then linear decay";
        meta["kangaroo.train.clip_value"] = F(o.Clip);
        meta["kangaroo.train.sequences"] = $"{trainSequences} train, {heldOutSequences} held out";
        meta["kangaroo.train.heldout_loss"] = F(last.HeldOut.MeanLoss);
        meta["kangaroo.train.heldout_top1_agreement"] = F(last.HeldOut.MeanAgreement);
        meta["kangaroo.train.heldout_overlap"] = F(last.HeldOut.MeanOverlap);
        meta["kangaroo.train.initial_heldout_loss"] = F(reports[0].HeldOut.MeanLoss);
        if (last.Epoch > 0)
        {
            meta["kangaroo.train.train_loss"] = F(last.Train.MeanLoss);
            meta["kangaroo.train.tokens_per_second"] = F(Math.Round(last.TokensPerSecond));
            meta["kangaroo.train.seconds"] = F(Math.Round(last.Elapsed.TotalSeconds, 1));
        }
        return weights;
    }

    /// <summary>Frees the trainer's device buffers; the model stays.</summary>
    public void Dispose()
    {
        _graph.Dispose();
        foreach (var t in new[] { _residual, _states, _targets }) t.Dispose();
    }
}
