using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Decoding;

/// <summary>Plain decoding: one full forward pass of the target per token.</summary>
public sealed class AutoregressiveDecoder : Decoder
{
    private readonly DeviceTensor _residual;
    private readonly DeviceTensor _logits;
    private readonly float[] _distribution;
    private readonly int[] _token = new int[1];

    public AutoregressiveDecoder(LlamaModel model) : base(model)
    {
        _residual = model.AllocateResidual(LlamaModel.MaxBlockRows);
        _logits = model.AllocateLogits(1);
        _distribution = new float[model.Config.VocabSize];
    }

    public override string Name => "autoregressive";

    protected override void ReleaseBuffers()
    {
        _residual.Dispose();
        _logits.Dispose();
    }

    protected override int Prefill(IReadOnlyList<int> tokens, int cached)
    {
        Model.Prefill(tokens, tokens.Count - 1, _residual, from: cached);
        return cached;
    }

    protected override void Step(List<int> tokens, int budget, TokenSampler sampler, List<int> committed)
    {
        var position = tokens.Count - 1;
        _token[0] = tokens[position];
        Model.Embed(_token, _residual);
        Model.RunBlocks(0, Model.Layers, _residual, 1, position);
        Model.Logits(_residual, 1, _logits);
        Stats.TargetForwardPasses++;
        committed.Add(Choose(_logits, 0, sampler, _distribution).Id);
    }
}
