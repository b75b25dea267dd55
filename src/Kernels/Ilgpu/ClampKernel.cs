using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Gradient value clipping.
///   math:   x[i] = min(max(x[i], -limit), limit)
///   launch: implicit, one thread per element.
///   bytes:  length * 8 (read + write).
/// </summary>
internal static class ClampKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void Clamp(Index1D index, ArrayView<float> x, float limit) =>
        x[index] = IntrinsicMath.Min(IntrinsicMath.Max(x[index], -limit), limit);
}
