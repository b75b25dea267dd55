using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Soft-label cross-entropy of the adapter's logits against the target's distribution, its gradient
/// and the per-row training metrics, in one pass over each row.
///   math:   logsumexp = m + log sum_c e^(z_c - m) (m = max z);  log q_c = z_c - logsumexp
///           loss = -sum_c p_c log q_c (terms with p_c = 0 skipped);  overlap = sum_c min(p_c, q_c)
///           agree = [argmax q == argmax p] (lowest index on ties);  z_c &lt;- gradScale * (q_c - p_c)
///   launch: explicit, one group per row (grid = rows, group = G = GroupWidths.Rows): a max and a sum
///           tree for logsumexp, then each thread handles columns t, t + G, ... and two sum trees and
///           two (value, index) arg-max trees combine the partials. A row depends only on itself.
///   bytes:  rows * cols * 4 * 3 read (z twice, p) + rows * cols * 4 written + rows * 12 of stats.
/// </summary>
internal static class SoftCrossEntropyKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void SoftCrossEntropy(ArrayView<float> logits, ArrayView<float> targets, ArrayView<float> stats, int cols, float gradScale)
    {
        var scratch = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var indices = SharedMemory.Allocate<int>(KernelLimits.MaxGroupSize);
        var row = Grid.IdxX;
        var offset = row * cols;
        var localMax = float.NegativeInfinity;
        for (var c = Group.IdxX; c < cols; c += Group.DimX) localMax = IntrinsicMath.Max(localMax, logits[offset + c]);
        var max = GroupReduce.Max(scratch, localMax);
        var localSum = 0f;
        for (var c = Group.IdxX; c < cols; c += Group.DimX) localSum += MathF.Exp(logits[offset + c] - max);
        var logSum = max + MathF.Log(GroupReduce.Sum(scratch, localSum));

        float loss = 0f, overlap = 0f, bestQ = float.NegativeInfinity, bestP = float.NegativeInfinity;
        int indexQ = int.MaxValue, indexP = int.MaxValue;
        for (var c = Group.IdxX; c < cols; c += Group.DimX)
        {
            var logQ = logits[offset + c] - logSum;
            var q = MathF.Exp(logQ);
            var p = targets[offset + c];
            if (p > 0f) loss -= p * logQ;
            overlap += IntrinsicMath.Min(p, q);
            if (q > bestQ || indexQ == int.MaxValue)
            {
                bestQ = q;
                indexQ = c;
            }
            if (p > bestP || indexP == int.MaxValue)
            {
                bestP = p;
                indexP = c;
            }
            logits[offset + c] = gradScale * (q - p);
        }
        var totalLoss = GroupReduce.Sum(scratch, loss);
        var totalOverlap = GroupReduce.Sum(scratch, overlap);
        var argMaxQ = GroupReduce.ArgMax(scratch, indices, bestQ, indexQ);
        var argMaxP = GroupReduce.ArgMax(scratch, indices, bestP, indexP);
        if (Group.IdxX == 0)
        {
            stats[row * 3] = totalLoss;
            stats[row * 3 + 1] = totalOverlap;
            stats[row * 3 + 2] = argMaxQ == argMaxP ? 1f : 0f;
        }
    }
}
