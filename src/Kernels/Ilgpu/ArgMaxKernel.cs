using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Greedy pick: arg max of each row of logits and its softmax probability.
///   math:   id_r = min { c : x[r, c] = max_c x[r, c] }  (lowest index on ties)
///           p_r = 1 / sum_c e^(x[r, c] - x[r, id_r])
///   launch: explicit, one group per row (grid = rows, group = G = GroupWidths.Rows). Thread t scans columns t, t + G,
///           ... keeping the first maximum (strict >); a shared-memory tree merges (value, index)
///           pairs preferring the larger value, then the lower index; then a sum reduction.
///           Both results go to one buffer (result[2r] = id, result[2r + 1] = bits of p), so the host
///           reads them back in one transfer.
///   bytes:  rows * cols * 4 read twice (second pass cached) + rows * 8 written.
/// </summary>
internal static class ArgMaxKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void ArgMax(ArrayView<float> logits, int cols, ArrayView<int> result)
    {
        var bestValues = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var bestIndices = SharedMemory.Allocate<int>(KernelLimits.MaxGroupSize);
        var t = Group.IdxX;
        var row = Grid.IdxX;
        var offset = row * cols;
        var best = float.NegativeInfinity;
        var index = int.MaxValue;
        for (var c = t; c < cols; c += Group.DimX)
        {
            var x = logits[offset + c];
            if (x > best || index == int.MaxValue)
            {
                best = x;
                index = c;
            }
        }
        var argMax = GroupReduce.ArgMax(bestValues, bestIndices, best, index);
        var max = logits[offset + argMax];
        var localSum = 0f;
        for (var c = t; c < cols; c += Group.DimX) localSum += MathF.Exp(logits[offset + c] - max);
        var sum = GroupReduce.Sum(bestValues, localSum);
        if (t == 0)
        {
            result[2 * row] = argMax;
            result[2 * row + 1] = (int)Interop.FloatAsInt(1f / sum);
        }
    }
}
