using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// SwiGLU activation of the feed-forward block, in place on the gate projection.
///   math:   gate[i] = gate[i] / (1 + exp(-gate[i])) * up[i]     (silu(gate) * up)
///   launch: implicit, one thread per element (length).
///   bytes:  length * 12 (read gate and up, write gate).
/// </summary>
internal static class SwiGluKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void SwiGlu(Index1D index, ArrayView<float> gate, ArrayView<float> up)
    {
        var g = gate[index];
        gate[index] = g / (1f + MathF.Exp(-g)) * up[index];
    }
}
