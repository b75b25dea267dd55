using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Backward of causal grouped-query attention, recomputing the softmax instead of storing it
/// (FlashAttention-2 style: only three floats per (row, head) are kept between the two kernels).
///   math:   for query row r (position p = startPos + r), head h, kv head j = h / (heads / kvHeads),
///           t in [0, p]:  s_t = (q[r, h] . K[t, j]) * scale,  P_t = e^(s_t - m) / l  (m = max s, l = sum e^(s - m)),
///           dP_t = dO[r, h] . V[t, j],  D = sum_t P_t dP_t,  dS_t = P_t (dP_t - D) * scale
///           dQ[r, h] = sum_t dS_t K[t, j]
///           dK[t, j] += sum_{r, h in group j} dS_t q[r, h];  dV[t, j] += sum_{r, h} P_t dO[r, h]
///   launch: Query: implicit, one thread per (row, head): four passes over its positions (max, sum,
///           D, then dQ), writing dQ and (m, l, D) to stats [rows * heads * 3].
///           KeyValue: implicit, one thread per (cache position t, kv head j), after Query: for the
///           query rows that see t (ascending) and the heads of the group (ascending) it recomputes
///           P_t and dS_t from the stats and adds onto dK[t, j] and dV[t, j] in place, so rows split
///           over calls accumulate in the same order. Each (row, head) depends only on its own
///           position: a block is bit-identical to one-row calls.
///   bytes:  Query: per (row, head) 4 * (p + 1) * headDim * 4 of K/V reads (cached) + headDim * 8;
///           KeyValue: per (t, j) (rows after t) * group * headDim * 16 (q and dO rows, cached)
///           + headDim * 16 (read-modify-write of dK and dV).
///   note:   one thread per row is plenty for adapter training at a few hundred positions; a
///           group-per-row version with split dot products is the next experiment for long contexts.
/// </summary>
internal static class AttentionBackwardKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void Query(Index1D index, ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> dOutput,
        ArrayView<float> dQ, ArrayView<float> stats, int startPos, int heads, int kvHeads, int headDim, float scale)
    {
        int rowHead = index;
        var row = rowHead / heads;
        var head = rowHead - row * heads;
        var kvDim = kvHeads * headDim;
        var kvOffset = head / (heads / kvHeads) * headDim;
        var qOffset = rowHead * headDim;
        var length = startPos + row + 1;

        var max = float.NegativeInfinity;
        for (var t = 0; t < length; t++) max = IntrinsicMath.Max(max, Dot(q, qOffset, keys, t * kvDim + kvOffset, headDim) * scale);
        var sum = 0f;
        for (var t = 0; t < length; t++) sum += MathF.Exp(Dot(q, qOffset, keys, t * kvDim + kvOffset, headDim) * scale - max);
        var weighted = 0f;
        for (var t = 0; t < length; t++)
        {
            var p = MathF.Exp(Dot(q, qOffset, keys, t * kvDim + kvOffset, headDim) * scale - max) / sum;
            weighted += p * Dot(dOutput, qOffset, values, t * kvDim + kvOffset, headDim);
        }
        for (var d = 0; d < headDim; d++) dQ[qOffset + d] = 0f;
        for (var t = 0; t < length; t++)
        {
            var key = t * kvDim + kvOffset;
            var p = MathF.Exp(Dot(q, qOffset, keys, key, headDim) * scale - max) / sum;
            var ds = p * (Dot(dOutput, qOffset, values, key, headDim) - weighted) * scale;
            for (var d = 0; d < headDim; d++) dQ[qOffset + d] += ds * keys[key + d];
        }
        stats[rowHead * 3] = max;
        stats[rowHead * 3 + 1] = sum;
        stats[rowHead * 3 + 2] = weighted;
    }

    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void KeyValue(Index1D index, ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> dOutput,
        ArrayView<float> dKeys, ArrayView<float> dValues, ArrayView<float> stats, int rows, int startPos, int heads, int kvHeads, int headDim, float scale)
    {
        int positionHead = index;
        var t = positionHead / kvHeads;
        var j = positionHead - t * kvHeads;
        var group = heads / kvHeads;
        var kvDim = kvHeads * headDim;
        var key = t * kvDim + j * headDim;
        for (var row = IntrinsicMath.Max(0, t - startPos); row < rows; row++)
        {
            for (var head = j * group; head < (j + 1) * group; head++)
            {
                var rowHead = row * heads + head;
                var qOffset = rowHead * headDim;
                var p = MathF.Exp(Dot(q, qOffset, keys, key, headDim) * scale - stats[rowHead * 3]) / stats[rowHead * 3 + 1];
                var ds = p * (Dot(dOutput, qOffset, values, key, headDim) - stats[rowHead * 3 + 2]) * scale;
                for (var d = 0; d < headDim; d++)
                {
                    dKeys[key + d] += ds * q[qOffset + d];
                    dValues[key + d] += p * dOutput[qOffset + d];
                }
            }
        }
    }

    private static float Dot(ArrayView<float> a, int aOffset, ArrayView<float> b, int bOffset, int length)
    {
        var sum = 0f;
        for (var d = 0; d < length; d++) sum += a[aOffset + d] * b[bOffset + d];
        return sum;
    }
}
