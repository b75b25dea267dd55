using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Rotary position embedding, Hugging Face convention (pairs i and i + headDim/2 of each head).
///   math:   for row r at position p = startPos + r, head h, i in [0, headDim/2):
///             (x0, x1) = (x[r, h, i], x[r, h, i + half]);  c = cos[p, i], s = sin[p, i]
///             x[r, h, i] = x0 * c - x1 * s;  x[r, h, i + half] = x0 * s + x1 * c
///           cos/sin come from RotaryTable (computed once on the host in double precision).
///           Backward (adjoint) is the rotation by minus the angle: the same kernel with sinSign = -1.
///   launch: implicit, one thread per pair (rows * heads * headDim/2), in place.
///   bytes:  rows * heads * headDim * 8 (read + write x) + rows * headDim * 4 (cos and sin rows).
/// </summary>
internal static class RopeKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void Rope(Index1D index, ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, int heads, int headDim, int startPos, float sinSign)
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
        float x0 = x[first], x1 = x[first + half], c = cos[angle], s = sinSign * sin[angle];
        x[first] = x0 * c - x1 * s;
        x[first + half] = x0 * s + x1 * c;
    }
}
