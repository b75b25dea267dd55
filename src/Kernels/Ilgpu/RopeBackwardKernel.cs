using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Backward of the rotary embedding: a rotation's adjoint is the rotation by minus the angle.
///   math:   for row r at position p = startPos + r, head h, i in [0, headDim/2), c = cos[p, i], s = sin[p, i]:
///             (g0, g1) = (g[r, h, i], g[r, h, i + half])
///             g[r, h, i] = g0 * c + g1 * s;  g[r, h, i + half] = g1 * c - g0 * s
///   launch: implicit, one thread per pair (rows * heads * headDim/2), in place.
///   bytes:  rows * heads * headDim * 8 (read + write) + rows * headDim * 4 (cos and sin rows).
/// </summary>
internal static class RopeBackwardKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void RopeBackward(Index1D index, ArrayView<float> grad, ArrayView<float> cos, ArrayView<float> sin, int heads, int headDim, int startPos)
    {
        int pair = index;
        var half = headDim / 2;
        var perRow = heads * half;
        var row = pair / perRow;
        var inRow = pair - row * perRow;
        var head = inRow / half;
        var i = inRow - head * half;
        var first = (row * heads + head) * headDim + i;
        var angle = (startPos + row) * half + i;
        float g0 = grad[first], g1 = grad[first + half], c = cos[angle], s = sin[angle];
        grad[first] = g0 * c + g1 * s;
        grad[first + half] = g1 * c - g0 * s;
    }
}
