using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Row softmax with temperature, in place.
///   math:   y = x / T;  logits[r, c] = e^(y_c - max y) / sum_c e^(y_c - max y)
///   launch: explicit, one group per row (grid = rows, group = G = GroupWidths.Rows): a max reduction, a sum
///           reduction (both shared-memory trees), then the normalising write.
///   bytes:  rows * cols * 4 read three times (cached after the first) + rows * cols * 4 written.
/// </summary>
internal static class SoftmaxKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void Softmax(ArrayView<float> logits, int cols, float temperature)
    {
        var scratch = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var offset = Grid.IdxX * cols;
        var scaled = temperature != 1f;
        var localMax = float.NegativeInfinity;
        for (var c = Group.IdxX; c < cols; c += Group.DimX)
        {
            var y = scaled ? logits[offset + c] / temperature : logits[offset + c];
            localMax = IntrinsicMath.Max(localMax, y);
        }
        var max = GroupReduce.Max(scratch, localMax);
        var localSum = 0f;
        for (var c = Group.IdxX; c < cols; c += Group.DimX)
        {
            var y = scaled ? logits[offset + c] / temperature : logits[offset + c];
            localSum += MathF.Exp(y - max);
        }
        var sum = GroupReduce.Sum(scratch, localSum);
        for (var c = Group.IdxX; c < cols; c += Group.DimX)
        {
            var y = scaled ? logits[offset + c] / temperature : logits[offset + c];
            logits[offset + c] = MathF.Exp(y - max) / sum;
        }
    }
}
