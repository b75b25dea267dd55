using System.Numerics;
using System.Numerics.Tensors;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Causal grouped-query attention and its backward.
///   math:   per query row r (position p_r of the sequence in its cache slot) and head h: p = softmax(scale * q . k_t) over
///           t = 0..p_r, output = sum_t p_t v_t, with kv head h / (heads / kvHeads).
///   tiles:  scores four keys at a time (<see cref="FloatTiles.Dot4"/>: one query against 4 keys, a short
///           tile repeating its last key); the weighted sum one vector of output dimensions at a time
///           over t ascending (<see cref="WeightedSum"/>). The forward and the backward compute p in
///           <see cref="AttentionWeights"/>, so they agree bit for bit.
///   bytes:  per (row, head) 2 * 4 * (p_r + 1) * headDim of cache read, from cache for the
///           heads that share a kv head.
/// </summary>
public sealed partial class CpuDevice
{
    private float[] _scores = [];

    /// <inheritdoc/>
    public override void Attention(DeviceTensor q, DeviceTensor keyCache, DeviceTensor valueCache, DeviceTensor output,
        BatchRows rows, int heads, int kvHeads, int headDim, int slotPositions)
    {
        var kvDim = kvHeads * headDim;
        CheckRows(rows, slotPositions, keyCache.Length, kvDim);
        var query = Span(q);
        var o = Span(output);
        var group = heads / kvHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        for (var r = 0; r < rows.Count; r++)
        {
            var length = rows.Position(r) + 1;
            var slot = rows.Slot(r) * slotPositions * kvDim;
            var k = Span(keyCache).Slice(slot, length * kvDim);
            var v = Span(valueCache).Slice(slot, length * kvDim);
            if (_scores.Length < length) _scores = new float[Math.Max(length, 2 * _scores.Length)]; // grows by doubling, not every token
            var scores = _scores.AsSpan(0, length);
            for (var h = 0; h < heads; h++)
            {
                var qh = query.Slice((r * heads + h) * headDim, headDim);
                var kvOffset = h / group * headDim;
                AttentionWeights(qh, k, kvOffset, kvDim, scale, scores);
                WeightedSum(scores, v, kvOffset, kvDim, o.Slice((r * heads + h) * headDim, headDim));
            }
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
