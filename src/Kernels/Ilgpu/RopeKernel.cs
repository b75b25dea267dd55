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
///           SplitQkv is the epilogue of the fused QKV projection: row [q | k | v] at position p of the
///           sequence in cache slot s -> rotated q into the query buffer, rotated k and plain v into
///           cache row s * slotPositions + p of the layer (row r's slot and position come from the
///           pass's rows).
///   launch: implicit. Rope: one thread per pair (rows * heads * headDim/2), in place. SplitQkv: one
///           thread per pair of q and k plus one per element of v (rows * ((heads + kvHeads) * half + kvDim)).
///   bytes:  Rope: rows * heads * headDim * 8 (read + write x) + rows * headDim * 4 (cos and sin rows).
///           SplitQkv: rows * (dim + 2 kvDim) * 8 (read qkv, write q, k, v) + rows * headDim * 4.
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
        Rotate(x, first, x, first, half, cos, sin, (startPos + row) * half + i, sinSign);
    }

    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void SplitQkv(Index1D index, ArrayView<float> qkv, ArrayView<float> query, ArrayView<float> keys, ArrayView<float> values,
        ArrayView<float> cos, ArrayView<float> sin, ArrayView<int> slots, ArrayView<int> positions, int slotPositions, int heads, int kvHeads, int headDim)
    {
        int thread = index;
        var half = headDim / 2;
        var dim = heads * headDim;
        var kvDim = kvHeads * headDim;
        var perRow = (heads + kvHeads) * half + kvDim;
        var row = thread / perRow;
        var part = thread - row * perRow;
        var source = row * (dim + 2 * kvDim);
        var position = positions[row];
        var cacheRow = (slots[row] * slotPositions + position) * kvDim;
        if (part < (heads + kvHeads) * half)
        {
            var head = part / half; // q heads first, then k heads: [q | k] is one run of heads in the row
            var i = part - head * half;
            var from = source + head * headDim + i;
            var angle = position * half + i;
            if (head < heads) Rotate(qkv, from, query, row * dim + head * headDim + i, half, cos, sin, angle, 1f);
            else Rotate(qkv, from, keys, cacheRow + (head - heads) * headDim + i, half, cos, sin, angle, 1f);
        }
        else
        {
            var e = part - (heads + kvHeads) * half;
            values[cacheRow + e] = qkv[source + dim + kvDim + e];
        }
    }

    /// <summary>Rotates the pair (from, from + half) of <paramref name="source"/> by table entry
    /// <paramref name="angle"/> into (to, to + half) of <paramref name="target"/>.</summary>
    private static void Rotate(ArrayView<float> source, int from, ArrayView<float> target, int to, int half,
        ArrayView<float> cos, ArrayView<float> sin, int angle, float sinSign)
    {
        float x0 = source[from], x1 = source[from + half], c = cos[angle], s = sinSign * sin[angle];
        target[to] = x0 * c - x1 * s;
        target[to + half] = x0 * s + x1 * c;
    }
}
