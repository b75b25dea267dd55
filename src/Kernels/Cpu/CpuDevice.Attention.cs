using System.Numerics;
using System.Numerics.Tensors;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Causal grouped-query attention and its backward.
///   math:   per query row r (position p_r of the sequence in its cache slot) and head h: p = softmax(scale * q . k_t) over
///           t = 0..p_r, output = sum_t p_t v_t, with kv head h / (heads / kvHeads).
///   launch: (row, head) pairs in chunks over the device's <see cref="Threads"/> once the work reaches 2^18
///           multiply-adds, else on the calling thread.
///   tiles:  scores four keys at a time (<see cref="FloatTiles.Dot4"/>: one query against 4 keys, a short
///           tile repeating its last key); the weighted sum one vector of output dimensions at a time
///           over t ascending (<see cref="WeightedSum"/>). The forward and the backward compute p in
///           <see cref="AttentionWeights"/>, so they agree bit for bit.
///   bytes:  per (row, head) 2 * 4 * (p_r + 1) * headDim of cache read, from cache for the
///           heads that share a kv head.
/// </summary>
public sealed partial class CpuDevice
{
    /// <summary>Multiply-adds (query rows x heads x positions x head size) from which attention is split
    /// over the cores, by (row, head) pairs.</summary>
    private const long ParallelAttentionWork = 1 << 18;

    [ThreadStatic] private static float[]? t_scores;

    /// <inheritdoc/>
    public override void Attention(DeviceTensor q, DeviceTensor keyCache, DeviceTensor valueCache, DeviceTensor output,
        BatchRows rows, int heads, int kvHeads, int headDim, int slotPositions)
    {
        var kvDim = kvHeads * headDim;
        CheckRows(rows, slotPositions, keyCache.Length, kvDim);
        var tensors = (q: HostTensor.Of(q, this), k: HostTensor.Of(keyCache, this), v: HostTensor.Of(valueCache, this), o: HostTensor.Of(output, this));
        var pairs = rows.Count * heads;
        long work = 0;
        for (var r = 0; r < rows.Count; r++) work += (rows.Position(r) + 1L) * heads * headDim;
        if (work < ParallelAttentionWork || Threads == 1 || pairs < 2)
        {
            AttendPairs(tensors, rows, heads, kvHeads, headDim, slotPositions, 0, pairs);
            return;
        }
        var chunks = Math.Min(pairs, Threads * 4); // several per core, as for matmul
        Parallel.For(0, chunks, _parallel, c => AttendPairs(tensors, rows, heads, kvHeads, headDim, slotPositions, (int)((long)c * pairs / chunks), (int)((c + 1L) * pairs / chunks)));
    }

    /// <summary>(row, head) pairs [first, end), pair i being row i / heads and head i % heads: each the same
    /// computation whichever thread runs it.</summary>
    private static void AttendPairs((HostTensor q, HostTensor k, HostTensor v, HostTensor o) tensors, BatchRows rows, int heads, int kvHeads, int headDim,
        int slotPositions, int first, int end)
    {
        var kvDim = kvHeads * headDim;
        var query = tensors.q.Span;
        var o = tensors.o.Span;
        var group = heads / kvHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        for (var i = first; i < end; i++)
        {
            var (r, h) = (i / heads, i % heads);
            var length = rows.Position(r) + 1;
            var slot = rows.Slot(r) * slotPositions * kvDim;
            var k = tensors.k.Span.Slice(slot, length * kvDim);
            var v = tensors.v.Span.Slice(slot, length * kvDim);
            if (t_scores is null || t_scores.Length < length) t_scores = new float[Math.Max(length, 2 * (t_scores?.Length ?? 0))]; // grows by doubling, not every token
            var scores = t_scores.AsSpan(0, length);
            var qh = query.Slice((r * heads + h) * headDim, headDim);
            var kvOffset = h / group * headDim;
            AttentionWeights(qh, k, kvOffset, kvDim, scale, scores);
            WeightedSum(scores, v, kvOffset, kvDim, o.Slice((r * heads + h) * headDim, headDim));
        }
    }

    /// <summary>p = softmax(scale * q . k_t) over the positions t of p (the keys of one kv head at
    /// kvOffset in rows of kvDim): four keys per Dot4 call, a short tile repeating its last key. The
    /// forward and the backward both compute the weights here, so they agree bit for bit.</summary>
    private static void AttentionWeights(ReadOnlySpan<float> q, ReadOnlySpan<float> keys, int kvOffset, int kvDim, float scale, Span<float> p)
    {
        Span<float> dots = stackalloc float[4];
        var headDim = q.Length;
        for (var t = 0; t < p.Length; t += 4)
        {
            var last = Math.Min(4, p.Length - t) - 1;
            FloatTiles.Dot4(q, keys.Slice(t * kvDim + kvOffset, headDim), keys.Slice((t + Math.Min(1, last)) * kvDim + kvOffset, headDim),
                keys.Slice((t + Math.Min(2, last)) * kvDim + kvOffset, headDim), keys.Slice((t + last) * kvDim + kvOffset, headDim), dots);
            dots[..(last + 1)].CopyTo(p[t..]);
        }
        TensorPrimitives.Multiply(p, scale, p);
        StableSoftmax(p);
    }

    /// <inheritdoc/>
    public override void AttentionBackward(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor dOutput,
        DeviceTensor dQ, DeviceTensor dKeys, DeviceTensor dValues, int rows, int startPos, int heads, int kvHeads, int headDim)
    {
        var query = Span(q);
        var k = Span(keys);
        var v = Span(values);
        var dO = Span(dOutput);
        var dq = Span(dQ);
        var dk = Span(dKeys);
        var dv = Span(dValues);
        var kvDim = kvHeads * headDim;
        var group = heads / kvHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        var probabilities = new float[startPos + rows];
        var dScores = new float[startPos + rows];
        for (var r = 0; r < rows; r++)
        {
            var length = startPos + r + 1;
            var p = probabilities.AsSpan(0, length);
            var ds = dScores.AsSpan(0, length);
            for (var h = 0; h < heads; h++)
            {
                var qh = query.Slice((r * heads + h) * headDim, headDim);
                var doh = dO.Slice((r * heads + h) * headDim, headDim);
                var kvOffset = h / group * headDim;
                AttentionWeights(qh, k, kvOffset, kvDim, scale, p);
                var weightedSum = 0f;
                for (var t = 0; t < length; t++)
                {
                    ds[t] = TensorPrimitives.Dot(doh, v.Slice(t * kvDim + kvOffset, headDim));
                    weightedSum += p[t] * ds[t];
                }
                for (var t = 0; t < length; t++) ds[t] = p[t] * (ds[t] - weightedSum) * scale;
                var dqh = dq.Slice((r * heads + h) * headDim, headDim);
                dqh.Clear();
                for (var t = 0; t < length; t++)
                {
                    TensorPrimitives.MultiplyAdd(k.Slice(t * kvDim + kvOffset, headDim), ds[t], dqh, dqh);
                    var dkt = dk.Slice(t * kvDim + kvOffset, headDim);
                    TensorPrimitives.MultiplyAdd(qh, ds[t], dkt, dkt);
                    var dvt = dv.Slice(t * kvDim + kvOffset, headDim);
                    TensorPrimitives.MultiplyAdd(doh, p[t], dvt, dvt);
                }
            }
        }
    }

    /// <summary>output[d] = sum_t weights[t] * values[offset + t * stride + d], t ascending (one fused
    /// multiply-add per term), for d in [0, output.Length).</summary>
    private static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<float> values, int offset, int stride, Span<float> output)
    {
        var n = output.Length;
        var vectors = n / Vector<float>.Count;
        for (var c = 0; c < vectors; c++)
        {
            var acc = Vector<float>.Zero;
            var start = offset + c * Vector<float>.Count;
            for (var t = 0; t < weights.Length; t++)
                acc = Vector.FusedMultiplyAdd(new Vector<float>(values.Slice(start + t * stride, Vector<float>.Count)), new Vector<float>(weights[t]), acc);
            acc.CopyTo(output.Slice(c * Vector<float>.Count, Vector<float>.Count));
        }
        for (var d = vectors * Vector<float>.Count; d < n; d++)
        {
            var sum = 0f;
            for (var t = 0; t < weights.Length; t++) sum = MathF.FusedMultiplyAdd(values[offset + t * stride + d], weights[t], sum);
            output[d] = sum;
        }
    }
}
