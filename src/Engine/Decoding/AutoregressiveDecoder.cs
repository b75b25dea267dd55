namespace Kangaroo.Native.Engine.Decoding;

/// <summary>Plain decoding: one full forward pass of the target per token.</summary>
public sealed class AutoregressiveDecoder(LlamaModel model) : Decoder(model)
{
    private readonly AutoregressiveBatch _step = new(model);

    /// <inheritdoc/>
    public override string Name => "autoregressive";

    /// <inheritdoc/>
    protected override void ReleaseBuffers() => _step.Dispose();

    /// <inheritdoc/>
    protected override void Advance(Generation generation) => _step.Step([generation]);
}
