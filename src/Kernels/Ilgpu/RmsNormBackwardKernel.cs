using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Backward of RMS normalisation (training the adapter's two norms).
///   math:   s_r = 1 / sqrt(sum_i x[r, i]^2 / dim + eps)            (exactly as RmsNormKernel forms it)
///           c_r = sum_i w[i] * dy[r, i] * x[r, i]
///           dx[r, i] (+)= s_r * (w[i] * dy[r, i]) - (s_r^3 * c_r / dim) * x[r, i]
///           dw[i] += sum_r (dy[r, i] * x[r, i]) * s_r               (rows in ascending order)
///   launch: InputGradient: explicit, one group per row (grid = rows, group = G = GroupWidths.Rows);
///           the two row sums are strided partials combined by shared-memory trees (GroupReduce), so
///           a row's result does not depend on the other rows; it also stores s_r for the next kernel.
///           WeightGradient: implicit, one thread per column i, looping over the rows in order and
///           adding straight onto dw, so consecutive calls over a split block give identical bits.
///   bytes:  InputGradient: rows * dim * 4 * 3 read (x twice, dy) + rows * dim * 4 written
///           + dim * sizeof(weight) per row (cached); WeightGradient: rows * dim * 8 read + dim * 8.
/// </summary>
internal static class RmsNormBackwardKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void InputGradient<TWeights>(ArrayView<float> input, TWeights weight, ArrayView<float> dOutput, ArrayView<float> dInput,
        ArrayView<float> scales, int dim, float eps, int writeInput, int accumulate)
        where TWeights : struct, IWeightRows
    {
        var scratch = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var row = Grid.IdxX;
        var offset = row * dim;
        var sumOfSquares = 0f;
        var weighted = 0f;
        for (var i = Group.IdxX; i < dim; i += Group.DimX)
        {
            var x = input[offset + i];
            sumOfSquares += x * x;
            weighted += weight.Read(i) * dOutput[offset + i] * x;
        }
        var total = GroupReduce.Sum(scratch, sumOfSquares);
        var c = GroupReduce.Sum(scratch, weighted);
        var scale = 1f / MathF.Sqrt(total / dim + eps);
        if (Group.IdxX == 0) scales[row] = scale;
        if (writeInput == 0) return;
        var k = scale * scale * scale * c / dim;
        for (var i = Group.IdxX; i < dim; i += Group.DimX)
        {
            var g = scale * (weight.Read(i) * dOutput[offset + i]) - k * input[offset + i];
            dInput[offset + i] = accumulate != 0 ? dInput[offset + i] + g : g;
        }
    }

    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void WeightGradient(Index1D index, ArrayView<float> input, ArrayView<float> dOutput, ArrayView<float> scales,
        ArrayView<float> dWeight, int rows, int dim)
    {
        int i = index;
        var sum = dWeight[i];
        for (var r = 0; r < rows; r++) sum += dOutput[r * dim + i] * input[r * dim + i] * scales[r];
        dWeight[i] = sum;
    }
}
