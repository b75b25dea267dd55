using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>Settings of a self-speculative round: exit layer l, at most gamma drafts, and the
/// confidence threshold eta below which drafting stops early.</summary>
public sealed record SpeculationOptions(int ExitLayer, int DraftSteps = 6, float Threshold = 0.6f)
{
    /// <summary>Returns the options if they fit a model of <paramref name="layers"/> layers, else throws <see cref="ArgumentException"/>.</summary>
    public SpeculationOptions Validate(int layers)
    {
        if (ExitLayer < 1 || ExitLayer >= layers) throw new ArgumentException($"--exit-layer {ExitLayer} must be in 1..{layers - 1} for a {layers}-layer model");
        if (DraftSteps < 1) throw new ArgumentException($"--draft-steps {DraftSteps} must be >= 1");
        if (!(Threshold >= 0f && Threshold <= 1f)) throw new ArgumentException($"--threshold {Threshold} must be in [0, 1]");
        return this;
    }
}

/// <summary>
/// Kangaroo's double early exit (Liu et al., "Kangaroo: Lossless Self-Speculative Decoding via Double
/// Early Exiting", arXiv:2404.18911; docs/kangaroo.md), with either the trained adapter or the plain early-exit head drafting; with a
/// <see cref="SpeculationController"/> it is the <c>auto</c> decoder, which speculates only while that
/// is expected to pay and steps autoregressively otherwise. A round: catch the head up on the states
/// it has not seen; draft with the shallow blocks [0, l) and the head until gamma drafts or a draft
/// less likely than eta; verify every drafted position at once with the deep blocks [l, L); accept
/// the longest agreeing prefix plus one target token; truncate every cache to what was committed.
/// Greedy output equals autoregressive greedy exactly; with sampling, drafts are accepted with
/// probability min(1, p/q) and rejections resampled from normalise(max(0, p - q)), which keeps the
/// target's distribution.
/// </summary>
public sealed class SelfSpeculativeDecoder : Decoder
{
    private readonly DraftHead _head;
    private readonly string _name;
    private readonly int _maxDrafts;
    private int _gamma;
    private float _eta;
    private readonly int _exit;
    private readonly SpeculationController? _controller;
    private readonly AutoregressiveBatch _step;
    private readonly Batch _batch = new(LlamaModel.MaxBlockRows);
    private readonly Dictionary<int, DraftState> _drafts = [];
    private readonly DeviceTensor _states;      // the round's exit-layer states, one row per position
    private readonly DeviceTensor _draftLogits;
    private readonly DeviceTensor _verifyLogits;
    private readonly float[][] _draftDistributions;
    private readonly float[] _headDistribution;
    private readonly float[] _confidence;
    private readonly float[] _target;
    private readonly TopToken[] _top;
    private readonly bool _ownsHead;

    /// <summary>A decoder that speculates in every round with <paramref name="options"/>, or, given a
    /// <paramref name="controller"/>, only when and how it says (then <paramref name="options"/>'
    /// draft steps are the most it may choose). Every round is counted into <paramref name="acceptance"/>
    /// (default: new statistics with <see cref="AcceptanceStatistics.RunningMemory"/>). With
    /// <paramref name="ownsHead"/> the decoder disposes <paramref name="head"/> when it is disposed.</summary>
    public SelfSpeculativeDecoder(LlamaModel model, DraftHead head, SpeculationOptions options, AcceptanceStatistics? acceptance = null,
        SpeculationController? controller = null, string? name = null, bool ownsHead = false) : base(model)
    {
        _ownsHead = ownsHead;
        options.Validate(model.Layers);
        _head = head;
        _name = name ?? head.Name;
        _controller = controller;
        (_exit, _maxDrafts, _gamma, _eta) = (options.ExitLayer, options.DraftSteps, options.DraftSteps, options.Threshold);
        if (_maxDrafts >= LlamaModel.MaxBlockRows) throw new ArgumentException($"--draft-steps {_maxDrafts} must be below {LlamaModel.MaxBlockRows}");
        Acceptance = acceptance ?? new AcceptanceStatistics(AcceptanceStatistics.RunningMemory);
        _step = new AutoregressiveBatch(model);
        _states = model.AllocateResidual(_maxDrafts + 1);
        _draftLogits = model.Device.Allocate(head.Vocabulary);
        _verifyLogits = model.AllocateLogits(_maxDrafts + 1);
        _draftDistributions = Enumerable.Range(0, _maxDrafts).Select(_ => new float[model.Config.VocabSize]).ToArray();
        _headDistribution = new float[head.Vocabulary];
        _confidence = new float[_maxDrafts];
        _target = new float[model.Config.VocabSize];
        _top = new TopToken[_maxDrafts + 1];
    }

    /// <inheritdoc/>
    public override string Name => _name;

    /// <inheritdoc/>
    protected override void ReleaseBuffers()
    {
        _step.Dispose();
        foreach (var buffer in new[] { _states, _draftLogits, _verifyLogits }) buffer.Dispose();
        foreach (var draft in _drafts.Values) draft.Dispose();
        if (_ownsHead) _head.Dispose();
    }

    /// <summary>Probability of accepting a draft given its target and draft probabilities: min(1, p/q),
    /// the rule that keeps the target's distribution. Replaceable only so tests can show that the
    /// statistical test catches a wrong rule.</summary>
    internal Func<float, float, float> AcceptanceProbability { get; init; } = (p, q) => Math.Min(1f, p / q);

    /// <summary>The settings of the rounds: fixed, or the controller's current choice.</summary>
    public SpeculationOptions Options => new(_exit, _gamma, _eta);

    /// <summary>The draft head the rounds draft with.</summary>
    public DraftHead Head => _head;

    /// <summary>The running estimate of how often drafts are accepted, by depth and confidence: the
    /// adapter's held-out statistics at first, then updated by every round decoded.</summary>
    public AcceptanceStatistics Acceptance { get; }

    /// <summary>The <c>auto</c> decoder's judgement (plan, costs, fallbacks); null for a fixed decoder.</summary>
    public SpeculationController? Controller => _controller;

    private DeviceTensor Row(int row) => _states.Slice(row * Model.Config.Dim, Model.Config.Dim);

    private bool Speculating => _controller is null || _controller.Current == SpeculationController.Mode.Speculate;

    /// <summary>The head's view of a sequence in this slot holds a prefix of the model's (it is one position
    /// short after a round that accepted every draft, and further behind after plain steps), so speculation
    /// keeps only that prefix. Without speculation in view, the head is left behind.</summary>
    protected override int Begin(Generation generation, int cached)
    {
        _controller?.Begin(Acceptance);
        if (_controller is not null) (_gamma, _eta) = (_controller.DraftSteps, _controller.Threshold);
        var slot = generation.Sequence.Slot;
        if (!_drafts.TryGetValue(slot, out var draft)) _drafts[slot] = draft = new DraftState(Model, _head, _exit, slot);
        draft.Truncate(cached);
        if (_controller?.Current == SpeculationController.Mode.Autoregressive) return cached;
        generation.Sequence.Draft = draft;
        return Math.Min(cached, draft.Covered);
    }

    /// <inheritdoc/>
    protected override void Advance(Generation generation)
    {
        var began = generation.Elapsed;
        if (!generation.Prefilled || !Speculating || generation.Sequence.Draft is null) _step.Step([generation]);
        else Speculate(generation);
        if (_controller is null || generation.Committed.Count == 0) return;
        _controller.Observe(generation.Committed.Count, (generation.Elapsed - began).TotalMilliseconds, Acceptance);
        (_gamma, _eta) = (_controller.DraftSteps, _controller.Threshold);
    }

    /// <summary>Embeds <paramref name="token"/> at <paramref name="position"/> into row <paramref name="row"/> of
    /// the round's states and runs the shallow blocks over it.</summary>
    private void Shallow(Sequence sequence, int token, int position, int row)
    {
        _batch.Clear();
        _batch.Add(sequence.Slot, position, [token]);
        Model.Embed(_batch.Tokens, Row(row));
        Model.RunBlocks(0, _exit, Row(row), _batch);
    }

    private void Speculate(Generation generation)
    {
        var sequence = generation.Sequence;
        var draft = sequence.Draft!;
        var tokens = sequence.Tokens;
        var start = tokens.Count - 1;
        var budget = generation.Budget - generation.Produced;
        var drafts = new List<int>(_gamma);
        var began = generation.Elapsed;

        // Draft: shallow blocks, then the head (caught up on what it has not seen), until gamma drafts,
        // the budget, or low confidence. The last shallow pass is only verified, not drafted from.
        for (var step = 0; ; step++)
        {
            var position = start + step;
            Shallow(sequence, step == 0 ? tokens[start] : drafts[step - 1], position, step);
            if (step == Math.Min(_gamma, budget - 1)) break;
            if (step > 0 && _confidence[step - 1] < _eta) break;
            draft.Follow(Row(step), position, 1, _exit);
            draft.CatchUp(_draftLogits);
            drafts.Add(DraftToken(generation.Sampler, step));
        }
        var drafted = generation.Elapsed;
        generation.Stats.Draft += drafted - began;

        // Verify: the deep blocks over every shallow state of the round at once.
        var rows = drafts.Count + 1;
        _batch.Clear();
        _batch.Add(sequence.Slot, start, [tokens[start], .. drafts]);
        var verifyStates = _states.Slice(0, rows * Model.Config.Dim);
        Model.RunBlocks(_exit, Model.Layers, verifyStates, _batch);
        Model.Logits(verifyStates, rows, _verifyLogits);
        generation.Stats.TargetForwardPasses++;

        // Accept, then truncate: keep the positions of the tokens before the last committed one.
        var committed = new List<int>(rows);
        var accepted = generation.Sampler.Options.Greedy ? AcceptGreedy(drafts, committed) : AcceptSampled(drafts, generation.Sampler, committed);
        generation.Stats.Verify += generation.Elapsed - drafted;
        for (var i = 0; i < drafts.Count && i <= accepted; i++) Acceptance.Record(i + 1, _confidence[i], i < accepted);
        sequence.Truncate(start + accepted + 1);
        if (accepted == drafts.Count) draft.Follow(Row(drafts.Count), start + drafts.Count, 1, _exit); // drafted from in the next round
        generation.Commit(committed);
    }
    /// <summary>The draft token from the head's logits: its arg max (greedy) or a draw from its
    /// sampling distribution q, which is kept, over the whole vocabulary (0 outside a draft
    /// vocabulary), for verification. Records the confidence for eta: the head's top-1 probability.</summary>
    private int DraftToken(TokenSampler sampler, int step)
    {
        var draft = Choose(Model.Device, _draftLogits, 0, sampler, _headDistribution);
        _confidence[step] = sampler.Options.Greedy ? draft.Probability : _headDistribution.Max();
        if (!sampler.Options.Greedy)
        {
            var q = _draftDistributions[step];
            Array.Clear(q);
            for (var i = 0; i < _headDistribution.Length; i++) q[_head.TokenId(i)] = _headDistribution[i];
        }
        return _head.TokenId(draft.Id);
    }

    private int AcceptGreedy(List<int> drafts, List<int> committed)
    {
        var rows = drafts.Count + 1;
        Model.Device.ArgMax(_verifyLogits, rows, Model.Config.VocabSize, _top.AsSpan(0, rows));
        for (var i = 0; i < rows; i++) TokenSampler.RequireFinite(_top[i]);
        var accepted = 0;
        while (accepted < drafts.Count && drafts[accepted] == _top[accepted].Id) accepted++;
        committed.AddRange(drafts.Take(accepted));
        committed.Add(_top[accepted].Id);
        return accepted;
    }

    private int AcceptSampled(List<int> drafts, TokenSampler sampler, List<int> committed)
    {
        var vocab = Model.Config.VocabSize;
        for (var i = 0; i <= drafts.Count; i++)
        {
            Model.Device.Download(_verifyLogits.Slice(i * vocab, vocab), _target);
            sampler.ToDistribution(_target);
            if (i == drafts.Count)
            {
                committed.Add(sampler.Draw(_target)); // every draft accepted: bonus token from p
                return i;
            }
            var q = _draftDistributions[i];
            var x = drafts[i];
            if (sampler.NextUniform() < AcceptanceProbability(_target[x], q[x]))
            {
                committed.Add(x);
                continue;
            }
            var residual = 0f;
            for (var v = 0; v < vocab; v++) residual += _target[v] = Math.Max(0f, _target[v] - q[v]);
            if (residual <= 0f) throw new InvalidOperationException("speculative sampling: empty residual distribution");
            for (var v = 0; v < vocab; v++) _target[v] /= residual;
            committed.Add(sampler.Draw(_target));
            return i;
        }
        throw new InvalidOperationException("unreachable");
    }
}
