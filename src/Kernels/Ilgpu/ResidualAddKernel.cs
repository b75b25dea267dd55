using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Residual connection.
///   math:   target[i] += addend[i]
///   launch: implicit, one thread per element (length).
///   bytes:  length * 12 (read both, write target).
/// </summary>
internal static class ResidualAddKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void Add(Index1D index, ArrayView<float> target, ArrayView<float> addend) =>
        target[index] += addend[index];
}
