using System.Runtime.InteropServices;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Engine.Training;

/// <summary>Sums of the per-position metrics over a set of positions.</summary>
public readonly record struct LossSums(double Loss, double Overlap, double Agreement, long Positions)
{
    /// <summary>Sums of both sets of positions.</summary>
    public static LossSums operator +(LossSums a, LossSums b) =>
        new(a.Loss + b.Loss, a.Overlap + b.Overlap, a.Agreement + b.Agreement, a.Positions + b.Positions);

    /// <summary>Mean soft cross-entropy -sum_v p_v log q_v per position.</summary>
    public double MeanLoss => Positions == 0 ? 0 : Loss / Positions;

    /// <summary>Mean sum_v min(p_v, q_v): the expected acceptance of a sampled draft.</summary>
    public double MeanOverlap => Positions == 0 ? 0 : Overlap / Positions;

    /// <summary>Fraction of positions where the adapter's top-1 token is the target's.</summary>
    public double MeanAgreement => Positions == 0 ? 0 : Agreement / Positions;
}

/// <summary>
/// The Kangaroo adapter as a trainable graph on a device: parameters (float32 master copies that the
/// forward operations read through F32 weights), their gradients and AdamW moments. One call of
/// <see cref="Accumulate"/> runs one sequence forward, from the exit-layer states s to the loss
/// against the target distributions p, and backward, adding the parameter gradients:
/// <code>
///   n = RMSNorm_in(s); q, k, v = n Wq^T, n Wk^T, n Wv^T; RoPE(q, k)
///   h = s + Attention(q, k, v) Wo^T;  a = RMSNorm_out(h);  z = a LMHead^T
///   loss = -sum_v p_v log softmax(z)_v        (LM head frozen; s carries no gradient)
/// </code>
/// The backward pass is the same chain in reverse, each step a <see cref="ComputeDevice"/> operation.
/// </summary>
internal sealed class AdapterGraph : IDisposable
{
    /// <summary>A trained tensor: its value, the weight the forward reads, gradient and moments.</summary>
    private sealed record Parameter(string Name, DeviceTensor Value, DeviceWeight Weight, DeviceTensor Gradient,
        DeviceTensor Moment1, DeviceTensor Moment2, bool Decay);

    private readonly ComputeDevice _device;
    private readonly DeviceWeight _lmHead;
    private readonly RotaryTable _rotary;
    private readonly int _dim, _heads, _vocab, _maxRows, _exitLayer;
    private readonly float _eps;
    private readonly Parameter _inputNorm, _query, _key, _value, _output, _outputNorm;
    private readonly Parameter[] _parameters;
    private readonly DeviceTensor _normed, _q, _k, _v, _attention, _sum, _adapted, _logits, _stats;
    private readonly DeviceTensor _dAdapted, _dSum, _dAttention, _dq, _dk, _dv, _dNormed;
    private readonly float[] _hostStats;
    private readonly BatchRows _positions; // one sequence at positions 0..maxRows-1, its keys and values in _k and _v

    public AdapterGraph(ComputeDevice device, AdapterWeights initial, int heads, float normEps, DeviceWeight lmHead, RotaryTable rotary, int maxRows)
    {
        if (lmHead.Cols != initial.Dim) throw new ArgumentException($"LM head [{lmHead.Rows}, {lmHead.Cols}] does not take the adapter's hidden size {initial.Dim}");
        if (initial.Dim % heads != 0 || initial.Dim / heads != rotary.HeadDim)
            throw new ArgumentException($"hidden size {initial.Dim} with {heads} heads does not match the rotary table's head size {rotary.HeadDim}");
        if (maxRows > rotary.Positions) throw new ArgumentException($"{maxRows} positions exceed the rotary table's {rotary.Positions}");
        _device = device;
        _lmHead = lmHead;
        _rotary = rotary;
        _dim = initial.Dim;
        _heads = heads;
        _vocab = lmHead.Rows;
        _maxRows = maxRows;
        _exitLayer = initial.ExitLayer;
        _eps = normEps;
        _inputNorm = NewParameter(AdapterWeights.InputNormKey, initial.InputNorm, 1, false);
        _query = NewParameter(AdapterWeights.QueryKey, initial.Query, _dim, true);
        _key = NewParameter(AdapterWeights.KeyKey, initial.Key, _dim, true);
        _value = NewParameter(AdapterWeights.ValueKey, initial.Value, _dim, true);
        _output = NewParameter(AdapterWeights.OutputKey, initial.Output, _dim, true);
        _outputNorm = NewParameter(AdapterWeights.OutputNormKey, initial.OutputNorm, 1, false);
        _parameters = [_inputNorm, _query, _key, _value, _output, _outputNorm];

        DeviceTensor Rows(int width) => device.Allocate(maxRows * width);
        (_normed, _q, _k, _v, _attention, _sum, _adapted) = (Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim));
        (_dAdapted, _dSum, _dAttention, _dq, _dk, _dv, _dNormed) = (Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim), Rows(_dim));
        _logits = Rows(_vocab);
        _stats = Rows(3);
        _hostStats = new float[maxRows * 3];
        _positions = BatchRows.Sequence(0, 0, maxRows);
    }

    private Parameter NewParameter(string name, float[] values, int rows, bool decay)
    {
        var cols = values.Length / rows;
        var value = _device.Allocate(values.Length);
        _device.Upload(values, value);
        var weight = _device.UploadWeight(ElementType.F32, MemoryMarshal.AsBytes(values.AsSpan()), rows, cols);
        return new Parameter(name, value, weight, _device.Allocate(values.Length), _device.Allocate(values.Length), _device.Allocate(values.Length), decay);
    }

    public int MaxRows => _maxRows;

    /// <summary>
    /// Runs the adapter over one sequence of exit-layer states [rows, dim] (positions 0..rows-1) and
    /// scores it against the target distributions [rows, vocab]. With <paramref name="backward"/>,
    /// adds the gradient of gradScale * (summed loss) to the parameter gradients.
    /// </summary>
    public LossSums Accumulate(DeviceTensor states, DeviceTensor targets, int rows, float gradScale, bool backward)
    {
        if (rows < 1 || rows > _maxRows) throw new ArgumentOutOfRangeException(nameof(rows), $"{rows} rows; the graph holds 1..{_maxRows}");
        var d = _device;
        var n = rows * _dim;
        var headDim = _dim / _heads;
        var s = states.Slice(0, n);

        // Forward, keeping every intermediate the backward pass reads.
        d.RmsNorm(s, _inputNorm.Weight, _normed, rows, _eps);
        d.MatMul(_normed, _query.Weight, _q, rows);
        d.MatMul(_normed, _key.Weight, _k, rows);
        d.MatMul(_normed, _value.Weight, _v, rows);
        d.Rope(_q, rows, _heads, 0, _rotary);
        d.Rope(_k, rows, _heads, 0, _rotary);
        d.Attention(_q, _k, _v, _attention, _positions.Slice(0, rows), _heads, _heads, headDim, _maxRows);
        d.Copy(s, _sum.Slice(0, n));
        d.MatMul(_attention, _output.Weight, _sum, rows, accumulate: true);
        d.RmsNorm(_sum, _outputNorm.Weight, _adapted, rows, _eps);
        d.MatMul(_adapted, _lmHead, _logits, rows);
        d.SoftCrossEntropy(_logits, targets, _stats, rows, _vocab, gradScale); // _logits now holds dLoss/dz
        var sums = ReadStats(rows);
        if (!backward) return sums;

        // Backward: LM head (frozen) -> output norm -> residual + o_proj -> attention -> RoPE -> q/k/v -> input norm.
        d.MatMulBackwardInput(_logits, _lmHead, _dAdapted, rows);
        d.RmsNormBackward(_sum, _outputNorm.Weight, _dAdapted, _dSum, _outputNorm.Gradient, rows, _eps);
        d.MatMulWeightGradient(_dSum, _attention, _output.Gradient, rows, _dim, _dim);
        d.MatMulBackwardInput(_dSum, _output.Weight, _dAttention, rows);
        d.Fill(_dk.Slice(0, n), 0f);
        d.Fill(_dv.Slice(0, n), 0f);
        d.AttentionBackward(_q, _k, _v, _dAttention, _dq, _dk, _dv, rows, 0, _heads, _heads, headDim);
        d.RopeBackward(_dq, rows, _heads, 0, _rotary);
        d.RopeBackward(_dk, rows, _heads, 0, _rotary);
        d.MatMulWeightGradient(_dq, _normed, _query.Gradient, rows, _dim, _dim);
        d.MatMulWeightGradient(_dk, _normed, _key.Gradient, rows, _dim, _dim);
        d.MatMulWeightGradient(_dv, _normed, _value.Gradient, rows, _dim, _dim);
        d.MatMulBackwardInput(_dq, _query.Weight, _dNormed, rows);
        d.MatMulBackwardInput(_dk, _key.Weight, _dNormed, rows, accumulate: true);
        d.MatMulBackwardInput(_dv, _value.Weight, _dNormed, rows, accumulate: true);
        d.RmsNormBackward(s, _inputNorm.Weight, _dNormed, dInput: null, _inputNorm.Gradient, rows, _eps);
        return sums;
    }

    private LossSums ReadStats(int rows)
    {
        var host = _hostStats.AsSpan(0, rows * 3);
        _device.Download(_stats.Slice(0, rows * 3), host);
        double loss = 0, overlap = 0, agreement = 0;
        for (var r = 0; r < rows; r++)
        {
            loss += host[r * 3];
            overlap += host[r * 3 + 1];
            agreement += host[r * 3 + 2];
        }
        return new LossSums(loss, overlap, agreement, rows);
    }

    /// <summary>Clips every gradient value to ±<paramref name="clip"/> (0 = no clipping), applies one
    /// AdamW update (weight decay on the projection matrices only, not on the norm gains), publishes
    /// the new values to the forward weights and zeroes the gradients.</summary>
    public void Step(AdamWStep step, float clip)
    {
        foreach (var p in _parameters)
        {
            if (clip > 0) _device.ClampValues(p.Gradient, clip);
            _device.AdamW(p.Value, p.Gradient, p.Moment1, p.Moment2, p.Decay ? step : step with { WeightDecay = 0f });
            _device.UpdateWeight(p.Value, p.Weight);
        }
        ZeroGradients();
    }

    public void ZeroGradients()
    {
        foreach (var p in _parameters) _device.Fill(p.Gradient, 0f);
    }

    /// <summary>The accumulated gradients, in <see cref="AdapterWeights.Parameters"/> order.</summary>
    public float[][] DownloadGradients() => _parameters.Select(p => Download(p.Gradient)).ToArray();

    /// <summary>The current parameters as host adapter weights.</summary>
    public AdapterWeights Export()
    {
        var v = _parameters.Select(p => Download(p.Value)).ToArray();
        return new AdapterWeights(_dim, _exitLayer, v[0], v[1], v[2], v[3], v[4], v[5]);
    }

    private float[] Download(DeviceTensor tensor)
    {
        var values = new float[tensor.Length];
        _device.Download(tensor, values);
        return values;
    }

    public void Dispose()
    {
        foreach (var p in _parameters)
        {
            p.Weight.Dispose();
            foreach (var t in new[] { p.Value, p.Gradient, p.Moment1, p.Moment2 }) t.Dispose();
        }
        foreach (var t in new[] { _normed, _q, _k, _v, _attention, _sum, _adapted, _logits, _stats, _dAdapted, _dSum, _dAttention, _dq, _dk, _dv, _dNormed })
            t.Dispose();
    }
}
