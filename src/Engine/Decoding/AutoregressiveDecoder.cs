namespace Kangaroo.Native.Engine.Decoding;

/// <summary>Plain decoding: one full forward pass of the target per token.</summary>
public sealed class AutoregressiveDecoder(LlamaModel model) : Decoder(model)
{
    private readonly AutoregressiveBatch _step = new(model);

    public override string Name => "autoregressive";

    protected override void ReleaseBuffers() => _step.Dispose();

    protected override void Advance(Generation generation) => _step.Step([generation]);
}
