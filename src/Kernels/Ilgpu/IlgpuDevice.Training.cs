using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>The training operations of <see cref="IlgpuDevice"/>: the adapter's backward pass,
/// soft cross-entropy, gradient clipping and AdamW, each one kernel family (see the kernel files).</summary>
public sealed partial class IlgpuDevice
{
    private TrainingWeightKernels<F32Weights>? _trainF32;
    private TrainingWeightKernels<F16Weights>? _trainF16;
    private TrainingWeightKernels<BF16Weights>? _trainBF16;
    private Action<Index1D, ArrayView<float>, float>? _fill;
    private Action<Index1D, ArrayView<float>, float>? _clamp;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, float, float, float>? _adamW;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>? _rmsNormWeightGradient;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>? _matMulWeightGradient;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, float>? _attentionQuery;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, float>? _attentionKeyValue;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>? _softCrossEntropy;

    // Scratch that only grows: RMSNorm row scales, attention (max, sum, D) per (row, head).
    private MemoryBuffer1D<float, Stride1D.Dense>? _rowScales;
    private MemoryBuffer1D<float, Stride1D.Dense>? _attentionStats;

    private TrainingWeightKernels<F32Weights> TrainF32 => _trainF32 ??= new(this);
    private TrainingWeightKernels<F16Weights> TrainF16 => _trainF16 ??= new(this);
    private TrainingWeightKernels<BF16Weights> TrainBF16 => _trainBF16 ??= new(this);

    /// <inheritdoc/>
    public override void Fill(DeviceTensor tensor, float value)
    {
        var view = View(tensor);
        if (view.Length == 0) return;
        _fill ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, float>>(FillKernel.Fill));
        _fill((int)view.Length, view, value);
    }

    /// <inheritdoc/>
    public override void UpdateWeight(DeviceTensor source, DeviceWeight destination)
    {
        var w = Weight(destination);
        if (w.Type != ElementType.F32) throw new InvalidOperationException($"only F32 weights can be updated, not {w.Type}");
        var length = (long)w.Rows * w.Cols;
        View(source, length, nameof(source)).CopyTo(w.Floats.SubView(0, length));
    }

    /// <inheritdoc/>
    public override void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput,
        DeviceTensor dWeight, int rows, float eps, bool accumulate = false)
    {
        var w = Weight(weight);
        var dim = w.Cols;
        if (rows <= 0) return;
        var x = View(input, rows * dim, nameof(input));
        var dy = View(dOutput, rows * dim, nameof(dOutput));
        var dx = dInput is null ? dy : View(dInput, rows * dim, nameof(dInput)); // unused when dInput is null
        var dw = View(dWeight, dim, nameof(dWeight));
        var scales = Scratch(ref _rowScales, rows);
        var config = new KernelConfig(rows, _groups.Rows);
        int write = dInput is null ? 0 : 1, add = accumulate ? 1 : 0;
        switch (w.Type)
        {
            case ElementType.F32: TrainF32.RmsNormInput(config, x, new F32Weights(w.Floats), dy, dx, scales, dim, eps, write, add); break;
            case ElementType.F16: TrainF16.RmsNormInput(config, x, new F16Weights(w.Halves), dy, dx, scales, dim, eps, write, add); break;
            case ElementType.BF16: TrainBF16.RmsNormInput(config, x, new BF16Weights(w.Halves), dy, dx, scales, dim, eps, write, add); break;
            default: throw QuantizedNorm(w.Type);
        }
        _rmsNormWeightGradient ??= _accelerator.LoadAutoGroupedStreamKernel(
            Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int>>(RmsNormBackwardKernel.WeightGradient));
        _rmsNormWeightGradient(dim, x, dy, scales, dw, rows, dim);
    }

    /// <inheritdoc/>
    public override void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false)
    {
        var w = Weight(weight);
        if (rows <= 0) return;
        var dy = View(dOutput, rows * w.Rows, nameof(dOutput));
        var dx = View(dInput, rows * w.Cols, nameof(dInput));
        var elements = rows * w.Cols;
        var add = accumulate ? 1 : 0;
        switch (w.Type)
        {
            case ElementType.F32: TrainF32.MatMulInput(elements, dy, new F32Weights(w.Floats), dx, w.Cols, w.Rows, add); break;
            case ElementType.F16: TrainF16.MatMulInput(elements, dy, new F16Weights(w.Halves), dx, w.Cols, w.Rows, add); break;
            case ElementType.BF16: TrainBF16.MatMulInput(elements, dy, new BF16Weights(w.Halves), dx, w.Cols, w.Rows, add); break;
            default: throw new NotSupportedException($"adapter training reads the LM head as F32, F16 or BF16, not {w.Type}: train the adapter on the unquantized model");
        }
    }

    /// <inheritdoc/>
    public override void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim)
    {
        if (rows <= 0 || inDim <= 0 || outDim <= 0) return;
        _matMulWeightGradient ??= _accelerator.LoadAutoGroupedStreamKernel(
            Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int>>(MatMulBackwardKernel.WeightGradient));
        _matMulWeightGradient(outDim * inDim, View(dOutput, rows * outDim, nameof(dOutput)), View(input, rows * inDim, nameof(input)),
            View(dWeight, outDim * inDim, nameof(dWeight)), rows, inDim, outDim);
    }

    /// <inheritdoc/>
    public override void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table) =>
        Rotate(grad, rows, heads, startPos, table, -1f);

    /// <inheritdoc/>
    public override void AttentionBackward(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor dOutput,
        DeviceTensor dQ, DeviceTensor dKeys, DeviceTensor dValues, int rows, int startPos, int heads, int kvHeads, int headDim)
    {
        if (rows <= 0) return;
        CheckHeadGroups(heads, kvHeads);
        var queries = rows * heads * headDim;
        var cache = (startPos + rows) * kvHeads * headDim;
        var scale = 1f / MathF.Sqrt(headDim);
        var stats = Scratch(ref _attentionStats, rows * heads * 3);
        var vq = View(q, queries, nameof(q));
        var vk = View(keys, cache, nameof(keys));
        var vv = View(values, cache, nameof(values));
        var vdo = View(dOutput, queries, nameof(dOutput));
        _attentionQuery ??= _accelerator.LoadAutoGroupedStreamKernel(
            Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, float>>(AttentionBackwardKernel.Query));
        _attentionKeyValue ??= _accelerator.LoadAutoGroupedStreamKernel(
            Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, int, int, float>>(AttentionBackwardKernel.KeyValue));
        _attentionQuery(rows * heads, vq, vk, vv, vdo, View(dQ, queries, nameof(dQ)), stats, startPos, heads, kvHeads, headDim, scale);
        _attentionKeyValue((startPos + rows) * kvHeads, vq, vk, vv, vdo, View(dKeys, cache, nameof(dKeys)), View(dValues, cache, nameof(dValues)),
            stats, rows, startPos, heads, kvHeads, headDim, scale);
    }

    /// <inheritdoc/>
    public override void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale)
    {
        if (rows <= 0) return;
        _softCrossEntropy ??= _accelerator.LoadStreamKernel(
            Checked<Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float>>(SoftCrossEntropyKernel.SoftCrossEntropy));
        _softCrossEntropy(new KernelConfig(rows, _groups.Rows), View(logits, rows * cols, nameof(logits)), View(targets, rows * cols, nameof(targets)),
            View(rowStats, rows * 3, nameof(rowStats)), cols, gradScale);
    }

    /// <inheritdoc/>
    public override void ClampValues(DeviceTensor tensor, float limit)
    {
        var view = View(tensor);
        if (view.Length == 0) return;
        _clamp ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, float>>(ClampKernel.Clamp));
        _clamp((int)view.Length, view, limit);
    }

    /// <inheritdoc/>
    public override void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step)
    {
        var p = View(parameters);
        var length = p.Length;
        if (length == 0) return;
        _adamW ??= _accelerator.LoadAutoGroupedStreamKernel(
            Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, float, float, float, float, float, float>>(AdamWKernel.AdamW));
        _adamW((int)length, p, View(gradients, length, nameof(gradients)), View(moment1, length, nameof(moment1)), View(moment2, length, nameof(moment2)),
            step.Beta1, step.Beta2, step.Epsilon, 1f - step.LearningRate * step.WeightDecay, step.LearningRate / step.BiasCorrection1, MathF.Sqrt(step.BiasCorrection2));
    }

    private ArrayView<float> Scratch(ref MemoryBuffer1D<float, Stride1D.Dense>? buffer, int length)
    {
        if (buffer is null || buffer.Length < length)
        {
            buffer?.Dispose();
            buffer = _accelerator.Allocate1D<float>(Math.Max(length, 2 * (buffer?.Length ?? 32)));
        }
        return buffer.View.SubView(0, length);
    }

    private void DisposeTraining()
    {
        _rowScales?.Dispose();
        _attentionStats?.Dispose();
    }

    /// <summary>The training kernels that read weights, compiled on first use for one weight reader type.</summary>
    private sealed class TrainingWeightKernels<TWeights>(IlgpuDevice device) where TWeights : struct, IWeightRows
    {
        private Action<KernelConfig, ArrayView<float>, TWeights, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>? _rmsNormInput;
        private Action<Index1D, ArrayView<float>, TWeights, ArrayView<float>, int, int, int>? _matMulInput;

        public Action<KernelConfig, ArrayView<float>, TWeights, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int> RmsNormInput =>
            _rmsNormInput ??= device._accelerator.LoadStreamKernel(
                Checked<Action<ArrayView<float>, TWeights, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, float, int, int>>(RmsNormBackwardKernel.InputGradient<TWeights>));

        public Action<Index1D, ArrayView<float>, TWeights, ArrayView<float>, int, int, int> MatMulInput =>
            _matMulInput ??= device._accelerator.LoadAutoGroupedStreamKernel(
                Checked<Action<Index1D, ArrayView<float>, TWeights, ArrayView<float>, int, int, int>>(MatMulBackwardKernel.InputGradient<TWeights>));
    }
}
