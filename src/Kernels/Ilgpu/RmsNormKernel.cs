using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// RMS normalisation.
///   math:   output[r, i] = (input[r, i] * s_r) * weight[i],  s_r = 1 / sqrt(sum_i input[r, i]^2 / dim + eps)
///   launch: explicit, one group per row (grid = rows, group = G = GroupWidths.Rows, a power of two). Thread t sums the
///           squares of columns t, t + G, ... in order; a shared-memory tree (GroupReduce.Sum)
///           combines the G partials, so a row's result does not depend on the other rows.
///   bytes:  rows * dim * 4 read twice (second read mostly cached) + rows * dim * 4 written
///           + dim * sizeof(weight) per row (the gain vector, cached).
/// </summary>
internal static class RmsNormKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void RmsNorm<TWeights>(ArrayView<float> input, TWeights weight, ArrayView<float> output, int dim, float eps)
        where TWeights : struct, IWeightRows
    {
        var scratch = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var offset = Grid.IdxX * dim;
        var sumOfSquares = 0f;
        for (var i = Group.IdxX; i < dim; i += Group.DimX)
        {
            var x = input[offset + i];
            sumOfSquares += x * x;
        }
        var total = GroupReduce.Sum(scratch, sumOfSquares);
        var scale = 1f / MathF.Sqrt(total / dim + eps);
        for (var i = Group.IdxX; i < dim; i += Group.DimX)
            output[offset + i] = input[offset + i] * scale * weight.Read(i);
    }
}
