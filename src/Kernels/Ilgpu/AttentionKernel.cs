using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Causal grouped-query attention over a layer's KV cache, with an online (streaming) softmax so any
/// context length fits in a fixed amount of shared memory.
///   math:   for query row r (position p of the sequence in cache slot c, both from the pass's rows)
///           and head h, kv head j = h / (heads / kvHeads), K and V the rows of slot c:
///             s_t = (q[r, h, :] . K[t, j, :]) * scale,  t in [0, p]      scale = 1 / sqrt(headDim)
///             out[r, h, :] = sum_t softmax(s)_t * V[t, j, :]
///           computed tile by tile (G positions per tile) with a running max m and sum l:
///             m' = max(m, max_tile s);  l = l * e^(m - m') + sum_tile e^(s - m');
///             acc = acc * e^(m - m') + sum_tile e^(s - m') * V;  out = acc / l.
///   launch: explicit, one group per (row, head) (grid = rows * heads, group = G = GroupWidths.Attention). Within a tile,
///           thread t scores position tile + t (a dot over headDim), then threads own output
///           dimensions d, d + G, ... and accumulate V rows (coalesced along d). q and acc live in
///           shared memory (headDim &lt;= 256). The work for a (row, head) depends only on its own
///           slot and position, so a block of rows is bit-identical to one-row calls, and rows of
///           other sequences in the same pass change nothing.
///   bytes:  per (row, head): (p + 1) * headDim * 8 (keys + values, shared by the heads of a kv
///           group through the cache) + headDim * 8 (q in, out).
///   note:   each thread reads a whole key row (strided across threads); a version that splits the
///           dot product across threads is the next experiment for long contexts.
/// </summary>
internal static class AttentionKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void Attention(ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> output,
        ArrayView<int> slots, ArrayView<int> positions, int slotPositions, int heads, int kvHeads, int headDim, float scale)
    {
        var query = SharedMemory.Allocate<float>(KernelLimits.MaxHeadDim);
        var acc = SharedMemory.Allocate<float>(KernelLimits.MaxHeadDim);
        var weights = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var scratch = SharedMemory.Allocate<float>(KernelLimits.MaxGroupSize);
        var t = Group.IdxX;
        var g = Group.DimX;
        var row = Grid.IdxX / heads;
        var head = Grid.IdxX - row * heads;
        var kvDim = kvHeads * headDim;
        var kvOffset = head / (heads / kvHeads) * headDim;
        var qOffset = (row * heads + head) * headDim;
        var length = positions[row] + 1;
        var first = slots[row] * slotPositions * kvDim; // the sequence's position 0

        for (var d = t; d < headDim; d += g)
        {
            query[d] = q[qOffset + d];
            acc[d] = 0f;
        }
        Group.Barrier();

        var max = 0f;
        var sum = 0f;
        for (var tile = 0; tile < length; tile += g)
        {
            var position = tile + t;
            var score = float.NegativeInfinity;
            if (position < length)
            {
                var key = first + position * kvDim + kvOffset;
                var dot = 0f;
                for (var d = 0; d < headDim; d++) dot += query[d] * keys[key + d];
                score = dot * scale;
            }
            var tileMax = GroupReduce.Max(scratch, score);
            var newMax = tile == 0 ? tileMax : IntrinsicMath.Max(max, tileMax);
            var weight = position < length ? MathF.Exp(score - newMax) : 0f;
            weights[t] = weight;
            var tileSum = GroupReduce.Sum(scratch, weight); // its barriers also publish weights[]
            var correction = tile == 0 ? 0f : MathF.Exp(max - newMax);
            sum = sum * correction + tileSum;
            var count = IntrinsicMath.Min(g, length - tile);
            for (var d = t; d < headDim; d += g)
            {
                var a = acc[d] * correction;
                for (var j = 0; j < count; j++) a += weights[j] * values[first + (tile + j) * kvDim + kvOffset + d];
                acc[d] = a;
            }
            max = newMax;
            Group.Barrier(); // weights[] is rewritten by the next tile
        }

        for (var d = t; d < headDim; d += g) output[qOffset + d] = acc[d] / sum;
    }
}
