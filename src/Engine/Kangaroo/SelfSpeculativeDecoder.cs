using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>Settings of a self-speculative round: exit layer l, at most gamma drafts, and the
/// confidence threshold eta below which drafting stops early.</summary>
public sealed record SpeculationOptions(int ExitLayer, int DraftSteps = 6, float Threshold = 0.6f)
{
    public SpeculationOptions Validate(int layers)
    {
        if (ExitLayer < 1 || ExitLayer >= layers) throw new ArgumentException($"--exit-layer {ExitLayer} must be in 1..{layers - 1} for a {layers}-layer model");
        if (DraftSteps < 1) throw new ArgumentException($"--draft-steps {DraftSteps} must be >= 1");
        if (!(Threshold >= 0f && Threshold <= 1f)) throw new ArgumentException($"--threshold {Threshold} must be in [0, 1]");
        return this;
    }
}

/// <summary>
/// Kangaroo's double early exit (Liu et al., arXiv:2404.18911; docs/kangaroo.md), with either the trained adapter or the plain
/// early-exit head drafting; with a <see cref="SpeculationController"/> it is the <c>auto</c> decoder,
/// which speculates only while that is expected to pay and steps autoregressively otherwise. One round: draft with the shallow blocks [0, l) and the head until gamma
/// drafts or a draft less likely than eta; verify every drafted position at once with the deep blocks
/// [l, L); accept the longest agreeing prefix plus one target token; truncate every cache to what
/// was committed. Greedy output equals autoregressive greedy exactly; with sampling, drafts are
/// accepted with probability min(1, p/q) and rejections resampled from normalise(max(0, p - q)),
/// which keeps the target's distribution.
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
    private readonly DeviceTensor _states;      // row 0: carried state of the previous round's last position; rows 1..gamma+1: this round
    private readonly DeviceTensor _draftLogits;
    private readonly DeviceTensor _verifyLogits;
    private readonly float[][] _draftDistributions;
    private readonly float[] _headDistribution;
    private readonly float[] _confidence;
    private readonly float[] _target;
    private readonly int[] _token = new int[1];
    private readonly TopToken[] _top;
    private bool _carried;
    private DeviceTensor? _exitStates; // exit-layer states of the positions stepped autoregressively since the head last ran
    private int _exitStatesFrom = -1;
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
        _states = model.AllocateResidual(Math.Max(LlamaModel.MaxBlockRows, _maxDrafts + 2));
        _draftLogits = model.Device.Allocate(head.Vocabulary);
        _verifyLogits = model.AllocateLogits(_maxDrafts + 1);
        _draftDistributions = Enumerable.Range(0, _maxDrafts).Select(_ => new float[model.Config.VocabSize]).ToArray();
        _headDistribution = new float[head.Vocabulary];
        _confidence = new float[_maxDrafts];
        _target = new float[model.Config.VocabSize];
        _top = new TopToken[_maxDrafts + 1];
    }

    public override string Name => _name;

    protected override void ReleaseBuffers()
    {
        foreach (var buffer in new[] { _states, _draftLogits, _verifyLogits, _exitStates }) buffer?.Dispose();
        if (_ownsHead) _head.Dispose();
    }

    /// <summary>Probability of accepting a draft given its target and draft probabilities: min(1, p/q),
    /// the rule that keeps the target's distribution. Replaceable only so tests can show that the
    /// statistical test catches a wrong rule.</summary>
    internal Func<float, float, float> AcceptanceProbability { get; init; } = (p, q) => Math.Min(1f, p / q);

    /// <summary>The settings of the rounds: fixed, or the controller's current choice.</summary>
    public SpeculationOptions Options => new(_exit, _gamma, _eta);

    public DraftHead Head => _head;

    /// <summary>The running estimate of how often drafts are accepted, by depth and confidence: the
    /// adapter's held-out statistics at first, then updated by every round decoded.</summary>
    public AcceptanceStatistics Acceptance { get; }

    /// <summary>The <c>auto</c> decoder's judgement (plan, costs, fallbacks); null for a fixed decoder.</summary>
    public SpeculationController? Controller => _controller;

    private DeviceTensor Row(int row) => _states.Slice(row * Model.Config.Dim, Model.Config.Dim);

    private bool Speculating => _controller is null || _controller.Current == SpeculationController.Mode.Speculate;

    /// <summary>The head's cache holds a prefix of the target's (it is one position short after a round that
    /// accepted every draft, and further behind after falling back), so speculation keeps only that prefix.</summary>
    protected override int Prefill(IReadOnlyList<int> tokens, int cached)
    {
        _carried = false;
        _exitStatesFrom = -1;
        _controller?.Begin(Acceptance);
        if (_controller is not null) (_gamma, _eta) = (_controller.DraftSteps, _controller.Threshold);
        if (Speculating) cached = Math.Min(cached, _head.CachedPositions);
        Model.Cache.Truncate(cached);
        _head.Truncate(cached);
        if (Speculating) Model.Prefill(tokens, tokens.Count - 1, _states, _exit, (states, rows, start) => _head.Run(states, rows, start, logits: null), cached);
        else Model.Prefill(tokens, tokens.Count - 1, _states, from: cached);
        return cached;
    }

    protected override void Step(List<int> tokens, int budget, TokenSampler sampler, List<int> committed)
    {
        var began = Elapsed;
        if (Speculating) Speculate(tokens, budget, sampler, committed);
        else StepAutoregressively(tokens, sampler, committed);
        if (_controller is null) return;
        _controller.Observe(committed.Count, (Elapsed - began).TotalMilliseconds, Acceptance);
        (_gamma, _eta) = (_controller.DraftSteps, _controller.Threshold);
    }

    /// <summary>One plain decoding step. After speculation fell back, the exit-layer state is kept so
    /// that the head can catch up on these positions when speculation resumes.</summary>
    private void StepAutoregressively(List<int> tokens, TokenSampler sampler, List<int> committed)
    {
        var position = tokens.Count - 1;
        var row = Row(1);
        _token[0] = tokens[position];
        Model.Embed(_token, row);
        Model.RunBlocks(0, _exit, row, 1, position);
        if (_controller!.Current == SpeculationController.Mode.FallenBack) KeepExitState(row, position);
        Model.RunBlocks(_exit, Model.Layers, row, 1, position);
        Model.Logits(row, 1, _verifyLogits);
        Stats.TargetForwardPasses++;
        committed.Add(Choose(_verifyLogits, 0, sampler, _target).Id);
    }

    private void KeepExitState(DeviceTensor row, int position)
    {
        var dim = Model.Config.Dim;
        _exitStates ??= Model.AllocateResidual(SpeculationController.LongestFallback + 1);
        if (_exitStatesFrom < 0)
        {
            _exitStatesFrom = _head.CachedPositions;
            if (_carried) Model.Device.Copy(Row(0), _exitStates.Slice(0, dim)); // the head is one position short
            _carried = false;
        }
        Model.Device.Copy(row, _exitStates.Slice((position - _exitStatesFrom) * dim, dim));
    }

    private void Speculate(List<int> tokens, int budget, TokenSampler sampler, List<int> committed)
    {
        var start = tokens.Count - 1;
        var drafts = new List<int>(_gamma);
        var began = Elapsed;
        if (_exitStatesFrom >= 0) // catch the head up on the positions stepped autoregressively
        {
            _head.Run(_exitStates!, start - _exitStatesFrom, _exitStatesFrom, logits: null);
            _exitStatesFrom = -1;
        }

        // Draft: shallow blocks, then the head, until gamma drafts, the budget, or low confidence.
        for (var step = 0; ; step++)
        {
            var position = start + step;
            _token[0] = step == 0 ? tokens[start] : drafts[step - 1];
            Model.Embed(_token, Row(step + 1));
            Model.RunBlocks(0, _exit, Row(step + 1), 1, position);
            if (step == Math.Min(_gamma, budget - 1)) break;
            if (step > 0 && _confidence[step - 1] < _eta) break;

            var catchUp = _head.CachedPositions < position && _carried && step == 0;
            var first = catchUp ? 0 : step + 1;
            _head.Run(_states.Slice(first * Model.Config.Dim, (step + 2 - first) * Model.Config.Dim), step + 2 - first, position - (catchUp ? 1 : 0), _draftLogits);
            drafts.Add(DraftToken(sampler, step));
        }
        var drafted = Elapsed;
        Stats.Draft += drafted - began;

        // Verify: the deep blocks over every shallow state of the round at once.
        var rows = drafts.Count + 1;
        var verifyStates = _states.Slice(Model.Config.Dim, rows * Model.Config.Dim);
        Model.RunBlocks(_exit, Model.Layers, verifyStates, rows, start);
        Model.Logits(verifyStates, rows, _verifyLogits);
        Stats.TargetForwardPasses++;

        var accepted = sampler.Options.Greedy ? AcceptGreedy(drafts, committed) : AcceptSampled(drafts, sampler, committed);
        Stats.Verify += Elapsed - drafted;
        for (var i = 0; i < drafts.Count && i <= accepted; i++) Acceptance.Record(i + 1, _confidence[i], i < accepted);

        // Roll back: keep the positions of the tokens before the last committed one.
        var length = start + accepted + 1;
        Model.Cache.Truncate(length);
        _head.Truncate(length);
        _carried = accepted == drafts.Count;
        if (_carried) Model.Device.Copy(Row(rows), Row(0));
    }

    /// <summary>The draft token from the head's logits: its arg max (greedy) or a draw from its
    /// sampling distribution q, which is kept, over the whole vocabulary (0 outside a draft
    /// vocabulary), for verification. Records the confidence for eta: the head's top-1 probability.</summary>
    private int DraftToken(TokenSampler sampler, int step)
    {
        var draft = Choose(_draftLogits, 0, sampler, _headDistribution);
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
