using Kangaroo.Native.Kernels;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// Turns residual-stream states at the exit layer into draft logits over <see cref="Vocabulary"/>
/// entries: the whole vocabulary, or a draft vocabulary whose entry i is token <see cref="TokenId"/>(i).
/// A head with state keeps its own KV cache, a slot per sequence as the model's; <see cref="Cached"/>
/// is how many positions of a sequence it has seen (<see cref="int.MaxValue"/> for a head without state).
/// </summary>
public abstract class DraftHead(DraftLmHead lmHead) : IDisposable
{
    /// <summary>The LM-head rows the head scores.</summary>
    protected DraftLmHead LmHead { get; } = lmHead;

    /// <summary>The head's name, also its decoder's: kangaroo or early-exit.</summary>
    public abstract string Name { get; }

    /// <summary>Positions of the sequence in cache slot <paramref name="slot"/> the head has seen.</summary>
    public abstract int Cached(int slot);

    /// <summary>Entries of a row of draft logits.</summary>
    public int Vocabulary => LmHead.Size;

    /// <summary>The token of draft-logit entry <paramref name="index"/>.</summary>
    public int TokenId(int index) => LmHead.TokenId(index);

    /// <summary>Weight bytes one draft row reads (the head's own weights and its LM-head rows).</summary>
    public abstract long WeightBytes { get; }

    /// <summary>Runs the head over exit-layer states [rows, dim] at positions start..start+rows-1 of the
    /// sequence in <paramref name="slot"/>; when <paramref name="logits"/> is given, writes the last
    /// row's draft logits into it.</summary>
    public abstract void Run(DeviceTensor states, int slot, int start, int rows, DeviceTensor? logits);

    /// <summary>Forgets positions at or after <paramref name="length"/> of the sequence in <paramref name="slot"/>.</summary>
    public abstract void Truncate(int slot, int length);

    /// <summary>Frees the head's device buffers and its LM-head rows.</summary>
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

    /// <summary>The rows of <paramref name="draftVocabulary"/> gathered from <paramref name="model"/>'s LM head, or the whole head when null.</summary>
    public DraftLmHead(LlamaModel model, int[]? draftVocabulary)
    {
        _model = model;
        _ids = draftVocabulary;
        if (_ids is not null) _rows = model.Weights.GatherHeadRows(model.Device, _ids);
    }

    /// <summary>Entries of a row of draft logits.</summary>
    public int Size => _ids?.Length ?? _model.Config.VocabSize;
    /// <summary>The token of entry <paramref name="index"/>.</summary>
    public int TokenId(int index) => _ids?[index] ?? index;
    /// <summary>Bytes of LM-head rows one draft row reads.</summary>
    public long Bytes => _rows?.Bytes ?? _model.LmHead.Bytes;

    /// <summary>logits[r, :] over the draft vocabulary for hidden rows that are already normed.</summary>
    public void Logits(DeviceTensor hidden, int rows, DeviceTensor logits)
    {
        if (_rows is null) _model.HeadLogits(hidden, rows, logits);
        else _model.Device.MatMul(hidden, _rows, logits, rows);
    }

    /// <summary>Frees the gathered rows (the model's own head stays).</summary>
    public void Dispose() => _rows?.Dispose();
}

/// <summary>The early-exit baseline (LayerSkip-style, no training): the target's own final norm and
/// LM head applied to the exit layer's residual stream.</summary>
public sealed class ExitNormHead(LlamaModel model, int[]? draftVocabulary = null) : DraftHead(new DraftLmHead(model, draftVocabulary))
{
    private readonly DeviceTensor _normed = model.AllocateResidual(1);

    /// <inheritdoc/>
    public override string Name => "early-exit";
    /// <inheritdoc/>
    public override int Cached(int slot) => int.MaxValue;
    /// <inheritdoc/>
    public override long WeightBytes => model.HeadBytes - model.LmHead.Bytes + LmHead.Bytes;

    /// <inheritdoc/>
    public override void Run(DeviceTensor states, int slot, int start, int rows, DeviceTensor? logits)
    {
        if (logits is null) return;
        model.FinalNorm(states.Slice((rows - 1) * model.Config.Dim, model.Config.Dim), 1, _normed);
        LmHead.Logits(_normed, 1, logits);
    }

    /// <inheritdoc/>
    public override void Truncate(int slot, int length)
    {
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        _normed.Dispose();
        base.Dispose();
    }
}

/// <summary>The Kangaroo adapter on a device: <c>a = RMSNorm_out(s + Attention(RMSNorm_in(s)))</c>,
/// the attention being the model's own kind of block (<see cref="AttentionBlock"/>, one layer, as many
/// kv heads as heads), then the target's LM head (not its final norm), or its draft-vocabulary rows.
/// It keeps its own one-layer KV cache with a slot per sequence of the model.</summary>
public sealed class AdapterHead : DraftHead
{
    private readonly LlamaModel _model;
    private readonly DeviceWeight _inputNorm, _qkv, _output, _outputNorm;
    private readonly AttentionBlock _attention;
    private readonly AttentionScratch _scratch;
    private readonly KvCache _cache;
    private readonly Batch _batch = new(LlamaModel.MaxBlockRows);
    private readonly DeviceTensor _sum, _normed;

    /// <summary>The adapter's parameters on the host.</summary>
    public AdapterWeights Weights { get; }

    /// <summary>Uploads <paramref name="weights"/> to <paramref name="model"/>'s device, after checking they were made for it.</summary>
    public AdapterHead(LlamaModel model, AdapterWeights weights) : base(new DraftLmHead(model, weights.CheckFits(model.Config, model.Fingerprint, "adapter").DraftVocabulary))
    {
        _model = model;
        Weights = weights;
        var device = model.Device;
        var (dim, c) = (weights.Dim, model.Config);
        DeviceWeight Upload(float[] values, int rows, int cols) =>
            device.UploadWeight(ElementType.F32, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()), rows, cols);
        _inputNorm = Upload(weights.InputNorm, 1, dim);
        _qkv = Upload([.. weights.Query, .. weights.Key, .. weights.Value], 3 * dim, dim); // one matmul, as in the model
        _output = Upload(weights.Output, dim, dim);
        _outputNorm = Upload(weights.OutputNorm, 1, dim);
        _attention = new AttentionBlock(_inputNorm, new StackedWeight([_qkv]), null, _output, c.Heads, c.Heads, c.NormEps);
        _scratch = new AttentionScratch(device, LlamaModel.MaxBlockRows, dim, dim, dim);
        _cache = new KvCache(device, 1, model.Context, dim, model.Cache.Slots);
        _sum = device.Allocate(LlamaModel.MaxBlockRows * dim);
        _normed = device.Allocate(dim);
    }

    /// <inheritdoc/>
    public override string Name => "kangaroo";
    /// <inheritdoc/>
    public override int Cached(int slot) => _cache.Length(slot, 0);
    /// <inheritdoc/>
    public override long WeightBytes => _inputNorm.Bytes + _qkv.Bytes + _output.Bytes + _outputNorm.Bytes + LmHead.Bytes;

    /// <inheritdoc/>
    public override void Run(DeviceTensor states, int slot, int start, int rows, DeviceTensor? logits)
    {
        var (d, dim) = (_model.Device, _model.Config.Dim);
        Span<int> none = stackalloc int[LlamaModel.MaxBlockRows];
        for (var done = 0; done < rows; done += LlamaModel.MaxBlockRows)
        {
            var n = Math.Min(LlamaModel.MaxBlockRows, rows - done);
            _batch.Clear();
            _batch.Add(slot, start + done, none[..n]);
            d.Copy(states.Slice(done * dim, n * dim), _sum.Slice(0, n * dim));
            _attention.Run(_sum, _batch, 0, n, _cache, 0, _model.Rotary, _scratch);
            if (logits is not null && done + n == rows)
            {
                d.RmsNorm(_sum.Slice((n - 1) * dim, dim), _outputNorm, _normed, 1, _model.Config.NormEps);
                LmHead.Logits(_normed, 1, logits);
            }
        }
    }

    /// <inheritdoc/>
    public override void Truncate(int slot, int length) => _cache.Truncate(slot, length);

    /// <inheritdoc/>
    public override void Dispose()
    {
        foreach (var w in new[] { _inputNorm, _qkv, _output, _outputNorm }) w.Dispose();
        _cache.Dispose();
        _scratch.Dispose();
        _sum.Dispose();
        _normed.Dispose();
        base.Dispose();
    }
}
