using Kangaroo.Native.Kernels;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// Turns residual-stream states at the exit layer into draft logits over <see cref="Vocabulary"/>
/// entries: the whole vocabulary, or a draft vocabulary whose entry i is token <see cref="TokenId"/>(i).
/// <see cref="CachedPositions"/> is how many positions the head has seen (its own KV cache); a head
/// without state reports <see cref="int.MaxValue"/>.
/// </summary>
public abstract class DraftHead(DraftLmHead lmHead) : IDisposable
{
    protected DraftLmHead LmHead { get; } = lmHead;

    public abstract string Name { get; }
    public abstract int CachedPositions { get; }

    /// <summary>Entries of a row of draft logits.</summary>
    public int Vocabulary => LmHead.Size;

    /// <summary>The token of draft-logit entry <paramref name="index"/>.</summary>
    public int TokenId(int index) => LmHead.TokenId(index);

    /// <summary>Weight bytes one draft row reads (the head's own weights and its LM-head rows).</summary>
    public abstract long WeightBytes { get; }

    /// <summary>Runs the head over states [rows, dim] at positions startPos..startPos+rows-1; when
    /// <paramref name="logits"/> is given, writes the last row's draft logits into it.</summary>
    public abstract void Run(DeviceTensor states, int rows, int startPos, DeviceTensor? logits);

    /// <summary>Forgets positions at or after <paramref name="length"/>.</summary>
    public abstract void Truncate(int length);

    public virtual void Dispose() => LmHead.Dispose();
}

/// <summary>The LM-head rows a draft head scores: the target's whole LM head, or only the rows of a
/// draft vocabulary (the most frequent tokens), stacked once at load. Verification always uses the
/// full head, so a draft vocabulary changes speed, never output.</summary>
public sealed class DraftLmHead : IDisposable
{
    private readonly LlamaModel _model;
    private readonly int[]? _ids;
    private readonly DeviceWeight? _rows;

    public DraftLmHead(LlamaModel model, int[]? draftVocabulary)
    {
        _model = model;
        _ids = draftVocabulary;
        if (_ids is not null) _rows = model.GatherHeadRows(_ids);
    }

    public int Size => _ids?.Length ?? _model.Config.VocabSize;
    public int TokenId(int index) => _ids?[index] ?? index;
    public long Bytes => _rows?.Bytes ?? _model.LmHead.Bytes;

    /// <summary>logits[r, :] over the draft vocabulary for hidden rows that are already normed.</summary>
    public void Logits(DeviceTensor hidden, int rows, DeviceTensor logits)
    {
        if (_rows is null) _model.HeadLogits(hidden, rows, logits);
        else _model.Device.MatMul(hidden, _rows, logits, rows);
    }

    public void Dispose() => _rows?.Dispose();
}

/// <summary>The early-exit baseline (LayerSkip-style, no training): the target's own final norm and
/// LM head applied to the exit layer's residual stream.</summary>
public sealed class ExitNormHead(LlamaModel model, int[]? draftVocabulary = null) : DraftHead(new DraftLmHead(model, draftVocabulary))
{
    private readonly DeviceTensor _normed = model.AllocateResidual(1);

    public override string Name => "early-exit";
    public override int CachedPositions => int.MaxValue;
    public override long WeightBytes => model.HeadBytes - model.LmHead.Bytes + LmHead.Bytes;

    public override void Run(DeviceTensor states, int rows, int startPos, DeviceTensor? logits)
    {
        if (logits is null) return;
        model.FinalNorm(states.Slice((rows - 1) * model.Config.Dim, model.Config.Dim), 1, _normed);
        LmHead.Logits(_normed, 1, logits);
    }

    public override void Truncate(int length)
    {
    }

    public override void Dispose()
    {
        _normed.Dispose();
        base.Dispose();
    }
}

/// <summary>The Kangaroo adapter on a device: <c>a = RMSNorm_out(s + Attention(RMSNorm_in(s)))</c>,
/// then the target's LM head (not its final norm), or its draft-vocabulary rows. It keeps its own
/// one-layer KV cache.</summary>
public sealed class AdapterHead : DraftHead
{
    private readonly LlamaModel _model;
    private readonly DeviceWeight _inputNorm, _qkv, _output, _outputNorm;
    private readonly KvCache _cache;
    private readonly DeviceTensor _normed, _qkvRows, _q, _attention, _sum;

    public AdapterWeights Weights { get; }

    public AdapterHead(LlamaModel model, AdapterWeights weights) : base(new DraftLmHead(model, weights.CheckFits(model.Config, model.Fingerprint, "adapter").DraftVocabulary))
    {
        _model = model;
        Weights = weights;
        var device = model.Device;
        var dim = weights.Dim;
        DeviceWeight Upload(float[] values, int rows, int cols) =>
            device.UploadWeight(ElementType.F32, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), rows, cols);
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
    public override long WeightBytes => _inputNorm.Bytes + _qkv.Bytes + _output.Bytes + _outputNorm.Bytes + LmHead.Bytes;

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
                LmHead.Logits(_normed, 1, logits);
            }
        }
    }

    public override void Truncate(int length) => _cache.Truncate(length);

    public override void Dispose()
    {
        foreach (var w in new[] { _inputNorm, _qkv, _output, _outputNorm }) w.Dispose();
        _cache.Dispose();
        foreach (var t in new[] { _normed, _qkvRows, _q, _attention, _sum }) t.Dispose();
        base.Dispose();
    }
}
