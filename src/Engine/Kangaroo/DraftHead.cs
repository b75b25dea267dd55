using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// Turns residual-stream states at the exit layer into draft logits. <see cref="CachedPositions"/> is
/// how many positions the head has seen (its own KV cache); a head without state reports
/// <see cref="int.MaxValue"/>.
/// </summary>
public abstract class DraftHead : IDisposable
{
    public abstract string Name { get; }
    public abstract int CachedPositions { get; }

    /// <summary>Runs the head over states [rows, dim] at positions startPos..startPos+rows-1; when
    /// <paramref name="logits"/> is given, writes the last row's draft logits into it.</summary>
    public abstract void Run(DeviceTensor states, int rows, int startPos, DeviceTensor? logits);

    /// <summary>Forgets positions at or after <paramref name="length"/>.</summary>
    public abstract void Truncate(int length);

    public abstract void Dispose();
}

/// <summary>The early-exit baseline (LayerSkip-style, no training): the target's own final norm and
/// LM head applied to the exit layer's residual stream.</summary>
public sealed class ExitNormHead(LlamaModel model) : DraftHead
{
    public override string Name => "early-exit";
    public override int CachedPositions => int.MaxValue;

    public override void Run(DeviceTensor states, int rows, int startPos, DeviceTensor? logits)
    {
        if (logits is not null) model.Logits(states.Slice((rows - 1) * model.Config.Dim, model.Config.Dim), 1, logits);
    }

    public override void Truncate(int length)
    {
    }

    public override void Dispose()
    {
    }
}

/// <summary>The Kangaroo adapter on a device: <c>a = RMSNorm_out(s + Attention(RMSNorm_in(s)))</c>,
/// then the target's LM head (not its final norm). It keeps its own one-layer KV cache.</summary>
public sealed class AdapterHead : DraftHead
{
    private readonly LlamaModel _model;
    private readonly DeviceWeight _inputNorm, _qkv, _output, _outputNorm;
    private readonly KvCache _cache;
    private readonly DeviceTensor _normed, _qkvRows, _q, _attention, _sum;

    public AdapterWeights Weights { get; }

    public AdapterHead(LlamaModel model, AdapterWeights weights)
    {
        _model = model;
        Weights = weights.CheckFits(model.Config, model.Fingerprint, "adapter");
        var device = model.Device;
        var dim = weights.Dim;
        DeviceWeight Upload(float[] values, int rows, int cols) =>
            device.UploadWeight(WeightType.F32, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), rows, cols);
        _inputNorm = Upload(weights.InputNorm, 1, dim);
        _qkv = Upload([.. weights.Query, .. weights.Key, .. weights.Value], 3 * dim, dim); // one matmul, as in LlamaModel
        _output = Upload(weights.Output, dim, dim);
        _outputNorm = Upload(weights.OutputNorm, 1, dim);
        _cache = new KvCache(device, 1, model.Context, dim);
        _normed = device.Allocate(LlamaModel.MaxBlockRows * dim);
        _qkvRows = device.Allocate(LlamaModel.MaxBlockRows * 3 * dim);
        _q = device.Allocate(LlamaModel.MaxBlockRows * dim);
        _attention = device.Allocate(LlamaModel.MaxBlockRows * dim);
        _sum = device.Allocate(LlamaModel.MaxBlockRows * dim);
    }

    public override string Name => "kangaroo";
    public override int CachedPositions => _cache.Length(0);

    public override void Run(DeviceTensor states, int rows, int startPos, DeviceTensor? logits)
    {
        var c = _model.Config;
        var d = _model.Device;
        var dim = c.Dim;
        for (var done = 0; done < rows; done += LlamaModel.MaxBlockRows)
        {
            var n = Math.Min(LlamaModel.MaxBlockRows, rows - done);
            var s = states.Slice(done * dim, n * dim);
            var pos = startPos + done;
            var (keys, values) = _cache.Append(0, pos, n);
            d.RmsNorm(s, _inputNorm, _normed, n, c.NormEps);
            d.MatMul(_normed, _qkv, _qkvRows, n);
            d.SplitQkv(_qkvRows, _q, keys, values, n, c.Heads, c.Heads, pos, _model.Rotary);
            d.Attention(_q, _cache.Keys(0), _cache.Values(0), _attention, n, pos, c.Heads, c.Heads, c.HeadDim);
            d.Copy(s, _sum.Slice(0, n * dim));
            d.MatMul(_attention, _output, _sum, n, accumulate: true);
            if (logits is not null && done + n == rows)
            {
                var last = _sum.Slice((n - 1) * dim, dim);
                d.RmsNorm(last, _outputNorm, _normed, 1, c.NormEps);
                _model.HeadLogits(_normed, 1, logits);
            }
        }
    }

    public override void Truncate(int length) => _cache.Truncate(length);

    public override void Dispose()
    {
        foreach (var w in new[] { _inputNorm, _qkv, _output, _outputNorm }) w.Dispose();
        _cache.Dispose();
        foreach (var t in new[] { _normed, _qkvRows, _q, _attention, _sum }) t.Dispose();
    }
}
