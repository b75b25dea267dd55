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
/// Kangaroo's double early exit (docs/kangaroo.md), with either the trained adapter or the plain
/// early-exit head drafting. One round: draft with the shallow blocks [0, l) and the head until gamma
/// drafts or a draft less likely than eta; verify every drafted position at once with the deep blocks
/// [l, L); accept the longest agreeing prefix plus one target token; truncate every cache to what
/// was committed. Greedy output equals autoregressive greedy exactly; with sampling, drafts are
/// accepted with probability min(1, p/q) and rejections resampled from normalise(max(0, p - q)),
/// which keeps the target's distribution.
/// </summary>
public sealed class SelfSpeculativeDecoder : Decoder
{
    private readonly DraftHead _head;
    private readonly int _gamma;
    private readonly float _eta;
    private readonly int _exit;
    private readonly DeviceTensor _states;      // row 0: carried state of the previous round's last position; rows 1..gamma+1: this round
    private readonly DeviceTensor _draftLogits;
    private readonly DeviceTensor _verifyLogits;
    private readonly float[][] _draftDistributions;
    private readonly float[] _target;
    private readonly int[] _token = new int[1];
    private readonly TopToken[] _top;
    private bool _carried;

    public SelfSpeculativeDecoder(LlamaModel model, DraftHead head, SpeculationOptions options) : base(model)
    {
        options.Validate(model.Layers);
        _head = head;
        (_exit, _gamma, _eta) = (options.ExitLayer, options.DraftSteps, options.Threshold);
        if (_gamma >= LlamaModel.MaxBlockRows) throw new ArgumentException($"--draft-steps {_gamma} must be below {LlamaModel.MaxBlockRows}");
        _states = model.AllocateResidual(Math.Max(LlamaModel.MaxBlockRows, _gamma + 2));
        _draftLogits = model.AllocateLogits(1);
        _verifyLogits = model.AllocateLogits(_gamma + 1);
        _draftDistributions = Enumerable.Range(0, _gamma).Select(_ => new float[model.Config.VocabSize]).ToArray();
        _target = new float[model.Config.VocabSize];
        _top = new TopToken[_gamma + 1];
    }

    public override string Name => _head.Name;

    /// <summary>Probability of accepting a draft given its target and draft probabilities: min(1, p/q),
    /// the rule that keeps the target's distribution. Replaceable only so tests can show that the
    /// statistical test catches a wrong rule.</summary>
    internal Func<float, float, float> AcceptanceProbability { get; init; } = (p, q) => Math.Min(1f, p / q);

    public SpeculationOptions Options => new(_exit, _gamma, _eta);

    private DeviceTensor Row(int row) => _states.Slice(row * Model.Config.Dim, Model.Config.Dim);

    protected override void Prefill(IReadOnlyList<int> tokens)
    {
        _head.Truncate(0);
        _carried = false;
        Model.Prefill(tokens, tokens.Count - 1, _states, _exit, (states, rows, start) => _head.Run(states, rows, start, logits: null));
    }

    protected override void Step(List<int> tokens, int budget, TokenSampler sampler, List<int> committed)
    {
        var start = tokens.Count - 1;
        var drafts = new List<int>(_gamma);
        var began = Elapsed;

        // Draft: shallow blocks, then the head, until gamma drafts, the budget, or low confidence.
        for (var step = 0; ; step++)
        {
            var position = start + step;
            _token[0] = step == 0 ? tokens[start] : drafts[step - 1];
            Model.Embed(_token, Row(step + 1));
            Model.RunBlocks(0, _exit, Row(step + 1), 1, position);
            if (step == Math.Min(_gamma, budget - 1)) break;
            if (step > 0 && _top[0].Probability < _eta) break;

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

        // Roll back: keep the positions of the tokens before the last committed one.
        var length = start + accepted + 1;
        Model.Cache.Truncate(length);
        _head.Truncate(length);
        _carried = accepted == drafts.Count;
        if (_carried) Model.Device.Copy(Row(rows), Row(0));
    }

    /// <summary>The draft token from the head's logits: its arg max (greedy) or a draw from its
    /// sampling distribution q, which is kept for verification. Sets the confidence for eta: the
    /// head's top-1 probability.</summary>
    private int DraftToken(TokenSampler sampler, int step)
    {
        var q = _draftDistributions[step];
        var draft = Choose(_draftLogits, 0, sampler, q);
        _top[0] = sampler.Options.Greedy ? draft : draft with { Probability = q.Max() };
        return draft.Id;
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
