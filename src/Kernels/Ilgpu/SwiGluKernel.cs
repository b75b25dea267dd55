using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// SwiGLU activation of the feed-forward block, the epilogue of the fused gate/up projection.
///   math:   row r of gateUp is [gate | up] (hiddenDim each);
///           output[r, i] = gate / (1 + exp(-gate)) * up     (silu(gate) * up)
///   launch: implicit, one thread per output element (rows * hiddenDim).
///   bytes:  rows * hiddenDim * 12 (read gate and up, write output).
/// </summary>
internal static class SwiGluKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void SwiGlu(Index1D index, ArrayView<float> gateUp, ArrayView<float> output, int hiddenDim)
    {
        int element = index;
        var row = element / hiddenDim;
        var gate = element + row * hiddenDim; // row * 2 hiddenDim + i
        var g = gateUp[gate];
        output[element] = g / (1f + MathF.Exp(-g)) * gateUp[gate + hiddenDim];
    }
}
