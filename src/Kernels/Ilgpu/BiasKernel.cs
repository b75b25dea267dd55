using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// The bias of a Linear layer (Qwen2's q, k and v projections), added after the matmul.
///   math:   x[r, c] += bias[c]   for r in [0, rows), c in [0, width)
///   launch: implicit, one thread per element (rows * width).
///   bytes:  rows * width * 8 (read and write x) + width * 4 (bias, cache-resident).
/// </summary>
internal static class BiasKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void AddBias(Index1D index, ArrayView<float> x, ArrayView<float> bias, int width) =>
        x[index] += bias[index % width];
}
