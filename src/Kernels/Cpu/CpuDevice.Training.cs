using System.Numerics.Tensors;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// The training operations of the <c>cpu</c> device (the adapter's backward pass and AdamW), one pass
/// over the rows each: per-row gradients with System.Numerics.Tensors, weight gradients summed over rows
/// in ascending order straight into the accumulator. Bytes: each operand once per call.
/// </summary>
public sealed partial class CpuDevice
{
    /// <inheritdoc/>
    public override void UpdateWeight(DeviceTensor source, DeviceWeight destination) =>
        Span(source)[..checked(destination.Rows * destination.Cols)].CopyTo(((CpuWeight)destination).Writable);

    /// <inheritdoc/>
    public override void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput,
        DeviceTensor dWeight, int rows, float eps, bool accumulate = false)
    {
        var w = (CpuWeight)weight;
        if (w.Type.IsQuantized()) throw QuantizedNorm(w.Type);
        var dim = w.Cols;
        var gamma = new float[dim];
        var weighted = new float[dim];
        w.Row(0, gamma.AsSpan());
        var x = Span(input);
        var dy = Span(dOutput);
        var dGamma = Span(dWeight)[..dim];
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * dim, dim);
            var dRow = dy.Slice(r * dim, dim);
            var scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / dim + eps);
            for (var i = 0; i < dim; i++) dGamma[i] += dRow[i] * row[i] * scale;
            if (dInput is null) continue;
            TensorPrimitives.Multiply(dRow, gamma, weighted);
            var c = TensorPrimitives.Dot(weighted, row);
            var k = scale * scale * scale * c / dim;
            var target = Span(dInput).Slice(r * dim, dim);
            for (var i = 0; i < dim; i++)
            {
                var g = scale * weighted[i] - k * row[i];
                target[i] = accumulate ? target[i] + g : g;
            }
        }
    }

    /// <inheritdoc/>
    public override void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false)
    {
        var w = (CpuWeight)weight;
        var inDim = w.Cols;
        var outDim = w.Rows;
        var dy = Span(dOutput);
        var dx = Span(dInput)[..(rows * inDim)];
        if (!accumulate) dx.Clear();
        for (var o = 0; o < outDim; o++)
        {
            var row = w.RowBlock(o, 1);
            for (var r = 0; r < rows; r++)
            {
                var target = dx.Slice(r * inDim, inDim);
                TensorPrimitives.MultiplyAdd(row, dy[r * outDim + o], target, target);
            }
        }
    }

    /// <inheritdoc/>
    public override void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim)
    {
        var dy = Span(dOutput);
        var x = Span(input);
        var dw = Span(dWeight);
        for (var r = 0; r < rows; r++)
        {
            var xRow = x.Slice(r * inDim, inDim);
            for (var o = 0; o < outDim; o++)
            {
                var target = dw.Slice(o * inDim, inDim);
                TensorPrimitives.MultiplyAdd(xRow, dy[r * outDim + o], target, target);
            }
        }
    }

    /// <inheritdoc/>
    public override void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table) =>
        Rotate(grad, rows, heads, startPos, table, -1f);

    /// <inheritdoc/>
    public override void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale)
    {
        var z = Span(logits);
        var p = Span(targets);
        var stats = Span(rowStats);
        for (var r = 0; r < rows; r++)
        {
            var row = z.Slice(r * cols, cols);
            var target = p.Slice(r * cols, cols);
            var max = TensorPrimitives.Max(row);
            var logSum = max + MathF.Log(SumOfExponentials(row, max));
            float loss = 0f, overlap = 0f;
            for (var v = 0; v < cols; v++)
            {
                var logQ = row[v] - logSum;
                var qv = MathF.Exp(logQ);
                if (target[v] > 0f) loss -= target[v] * logQ;
                overlap += MathF.Min(target[v], qv);
                row[v] = qv;
            }
            var agree = TensorPrimitives.IndexOfMax(row) == TensorPrimitives.IndexOfMax(target) ? 1f : 0f;
            for (var v = 0; v < cols; v++) row[v] = gradScale * (row[v] - target[v]);
            stats[r * 3] = loss;
            stats[r * 3 + 1] = overlap;
            stats[r * 3 + 2] = agree;
        }
    }

    /// <inheritdoc/>
    public override void ClampValues(DeviceTensor tensor, float limit) =>
        TensorPrimitives.Clamp(Span(tensor), -limit, limit, Span(tensor));

    /// <inheritdoc/>
    public override void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step)
    {
        var p = Span(parameters);
        var g = Span(gradients);
        var m = Span(moment1);
        var v = Span(moment2);
        var stepSize = step.LearningRate / step.BiasCorrection1;
        var sqrtCorrection2 = MathF.Sqrt(step.BiasCorrection2);
        var decay = 1f - step.LearningRate * step.WeightDecay;
        for (var i = 0; i < p.Length; i++)
        {
            m[i] = step.Beta1 * m[i] + (1f - step.Beta1) * g[i];
            v[i] = step.Beta2 * v[i] + (1f - step.Beta2) * g[i] * g[i];
            p[i] = p[i] * decay - stepSize * m[i] / (MathF.Sqrt(v[i]) / sqrtCorrection2 + step.Epsilon);
        }
    }
}
