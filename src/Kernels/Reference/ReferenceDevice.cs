using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Reference;

/// <summary>
/// The oracle every kernel is tested against: each operation of <see cref="ComputeDevice"/> as the
/// plainest scalar loops that state it, one element at a time, on one thread. Weights are widened or
/// dequantized once, at upload, by their element type's exact definition (<see cref="ElementTypes.ToFloats"/>).
/// Dot products, sums and row reductions accumulate in float64 and round once to float32, so the
/// result is closer to the exact value than any kernel's, and a kernel's tolerance measures its own
/// error. Where the operation's contract fixes an order across calls (weight gradients added row by
/// row into their accumulator), each row's term is rounded and added in that order.
/// Slow by design; <c>cpu</c> is the managed device for use.
/// </summary>
public sealed class ReferenceDevice : HostDevice
{
    /// <inheritdoc/>
    public override string Kind => "reference";
    /// <inheritdoc/>
    public override string Name => "reference (scalar, float64 sums)";
    /// <inheritdoc/>
    public override DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<byte> data, int rows, int cols)
    {
        var weight = new Weight(this, type, data, rows, cols);
        AllocatedBytes += weight.Bytes;
        return weight;
    }

    /// <inheritdoc/>
    public override void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output)
    {
        var w = Values(table);
        var o = Span(output);
        foreach (var token in tokens)
            if ((uint)token >= (uint)table.Rows) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary of {table.Rows}");
        for (var r = 0; r < tokens.Length; r++)
        for (var c = 0; c < table.Cols; c++)
            o[r * table.Cols + c] = w[tokens[r] * table.Cols + c];
    }

    /// <inheritdoc/>
    public override void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps)
    {
        var gamma = NormGains(weight);
        var x = Span(input);
        var y = Span(output);
        var dim = weight.Cols;
        for (var r = 0; r < rows; r++)
        {
            var scale = RmsScale(x.Slice(r * dim, dim), eps);
            for (var i = 0; i < dim; i++) y[r * dim + i] = (float)(x[r * dim + i] * scale * gamma[i]);
        }
    }

    /// <summary>1 / sqrt(mean(row^2) + eps), in float64.</summary>
    private static double RmsScale(ReadOnlySpan<float> row, float eps)
    {
        var sumOfSquares = 0.0;
        foreach (var v in row) sumOfSquares += (double)v * v;
        return 1 / Math.Sqrt(sumOfSquares / row.Length + eps);
    }

    /// <inheritdoc/>
    public override void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false, int outputStride = 0)
    {
        var w = Values(weight);
        var x = Span(input);
        var y = Span(output);
        var inDim = weight.Cols;
        var stride = OutputStride(weight, outputStride);
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < weight.Rows; o++)
        {
            var dot = Dot(x.Slice(r * inDim, inDim), w.AsSpan(o * inDim, inDim));
            y[r * stride + o] = (float)(accumulate ? y[r * stride + o] + dot : dot);
        }
    }

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var sum = 0.0;
        for (var i = 0; i < a.Length; i++) sum += (double)a[i] * b[i];
        return sum;
    }

    /// <inheritdoc/>
    public override void AddBias(DeviceTensor x, DeviceTensor bias, int rows)
    {
        var v = Span(x);
        var b = Span(bias);
        for (var r = 0; r < rows; r++)
        for (var c = 0; c < b.Length; c++)
            v[r * b.Length + c] += b[c];
    }

    /// <inheritdoc/>
    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table) => Rotate(Span(x), rows, heads, startPos, table, 1);

    /// <summary>Rotates each head's pairs (i, i + headDim/2) of rows at positions startPos + r by +angle
    /// (<paramref name="sign"/> 1) or -angle (-1, the adjoint, for backward).</summary>
    private void Rotate(Span<float> x, int rows, int heads, int startPos, RotaryTable table, int sign)
    {
        var cos = Span(table.Cos);
        var sin = Span(table.Sin);
        var half = table.HeadDim / 2;
        for (var r = 0; r < rows; r++)
        for (var h = 0; h < heads; h++)
        for (var i = 0; i < half; i++)
        {
            var first = (r * heads + h) * table.HeadDim + i;
            double x0 = x[first], x1 = x[first + half], c = cos[(startPos + r) * half + i], s = sign * sin[(startPos + r) * half + i];
            x[first] = (float)(x0 * c - x1 * s);
            x[first + half] = (float)(x0 * s + x1 * c);
        }
    }

    /// <inheritdoc/>
    protected override void RotateRow(Span<float> row, int position, RotaryTable table) =>
        Rotate(row, 1, row.Length / table.HeadDim, position, table, 1);

    /// <inheritdoc/>
    public override void Attention(DeviceTensor q, DeviceTensor keyCache, DeviceTensor valueCache, DeviceTensor output,
        BatchRows rows, int heads, int kvHeads, int headDim, int slotPositions)
    {
        var kvDim = kvHeads * headDim;
        CheckRows(rows, slotPositions, keyCache.Length, kvDim);
        var query = Span(q);
        var o = Span(output);
        for (var r = 0; r < rows.Count; r++)
        {
            var slot = rows.Slot(r) * slotPositions * kvDim;
            var k = Span(keyCache)[slot..];
            var v = Span(valueCache)[slot..];
            for (var h = 0; h < heads; h++)
            {
                var p = AttentionWeights(query, k, r, h, rows.Position(r) + 1, heads, kvHeads, headDim);
                var kv = h / (heads / kvHeads) * headDim;
                for (var d = 0; d < headDim; d++)
                {
                    var sum = 0.0;
                    for (var t = 0; t < p.Length; t++) sum += p[t] * v[t * kvDim + kv + d];
                    o[(r * heads + h) * headDim + d] = (float)sum;
                }
            }
        }
    }

    /// <summary>softmax(q . k_t / sqrt(headDim)) over positions t = 0..length - 1, in float64, for query
    /// row r and head h (kv head h / (heads / kvHeads)).</summary>
    private static double[] AttentionWeights(ReadOnlySpan<float> query, ReadOnlySpan<float> keys, int r, int h, int length, int heads, int kvHeads, int headDim)
    {
        var qh = query.Slice((r * heads + h) * headDim, headDim);
        var kv = h / (heads / kvHeads) * headDim;
        var p = new double[length];
        for (var t = 0; t < p.Length; t++) p[t] = Dot(qh, keys.Slice(t * kvHeads * headDim + kv, headDim)) / Math.Sqrt(headDim);
        Softmax(p);
        return p;
    }

    /// <summary>In place: p = exp(p - max) / sum.</summary>
    private static void Softmax(Span<double> p)
    {
        var max = double.NegativeInfinity;
        foreach (var v in p) max = Math.Max(max, v);
        var sum = 0.0;
        for (var i = 0; i < p.Length; i++) sum += p[i] = Math.Exp(p[i] - max);
        for (var i = 0; i < p.Length; i++) p[i] /= sum;
    }

    /// <inheritdoc/>
    public override void SwiGlu(DeviceTensor gateUp, DeviceTensor output, int rows, int hiddenDim)
    {
        var source = Span(gateUp);
        var y = Span(output);
        for (var r = 0; r < rows; r++)
        for (var i = 0; i < hiddenDim; i++)
        {
            double gate = source[2 * r * hiddenDim + i], up = source[(2 * r + 1) * hiddenDim + i];
            y[r * hiddenDim + i] = (float)(gate / (1 + Math.Exp(-gate)) * up);
        }
    }

    /// <inheritdoc/>
    public override void Add(DeviceTensor target, DeviceTensor addend, int length)
    {
        var t = Span(target);
        var a = Span(addend);
        for (var i = 0; i < length; i++) t[i] += a[i];
    }

    /// <inheritdoc/>
    public override void Softmax(DeviceTensor logits, int rows, int cols, float temperature)
    {
        var x = Span(logits);
        var p = new double[cols];
        for (var r = 0; r < rows; r++)
        {
            for (var c = 0; c < cols; c++) p[c] = (double)x[r * cols + c] / temperature;
            Softmax(p);
            for (var c = 0; c < cols; c++) x[r * cols + c] = (float)p[c];
        }
    }

    /// <inheritdoc/>
    public override void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result)
    {
        var x = Span(logits);
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * cols, cols);
            var best = IndexOfMax(row);
            var sum = 0.0;
            foreach (var v in row) sum += Math.Exp((double)v - row[best]);
            result[r] = new TopToken(best, (float)(1 / sum));
        }
    }

    /// <summary>The index of the largest value, the lowest on ties.</summary>
    private static int IndexOfMax(ReadOnlySpan<float> row)
    {
        var best = 0;
        for (var i = 1; i < row.Length; i++)
            if (row[i] > row[best]) best = i;
        return best;
    }

    /// <inheritdoc/>
    public override void UpdateWeight(DeviceTensor source, DeviceWeight destination)
    {
        if (destination.Type != ElementType.F32) throw new InvalidOperationException($"only F32 weights can be updated, not {destination.Type}");
        Span(source)[..checked(destination.Rows * destination.Cols)].CopyTo(Values(destination));
    }

    /// <inheritdoc/>
    public override void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput,
        DeviceTensor dWeight, int rows, float eps, bool accumulate = false)
    {
        var gamma = NormGains(weight);
        var x = Span(input);
        var dy = Span(dOutput);
        var dGamma = Span(dWeight);
        var dim = weight.Cols;
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * dim, dim);
            var scale = RmsScale(row, eps);
            for (var i = 0; i < dim; i++) dGamma[i] += (float)((double)dy[r * dim + i] * row[i] * scale);
            if (dInput is null) continue;
            var c = 0.0;
            for (var j = 0; j < dim; j++) c += (double)gamma[j] * dy[r * dim + j] * row[j];
            var dx = Span(dInput);
            for (var i = 0; i < dim; i++)
            {
                var g = scale * gamma[i] * dy[r * dim + i] - scale * scale * scale * c / dim * row[i];
                dx[r * dim + i] = (float)(accumulate ? dx[r * dim + i] + g : g);
            }
        }
    }

    /// <inheritdoc/>
    public override void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false)
    {
        var w = Values(weight);
        var dy = Span(dOutput);
        var dx = Span(dInput);
        var inDim = weight.Cols;
        var outDim = weight.Rows;
        for (var r = 0; r < rows; r++)
        for (var i = 0; i < inDim; i++)
        {
            var sum = 0.0;
            for (var o = 0; o < outDim; o++) sum += (double)dy[r * outDim + o] * w[o * inDim + i];
            dx[r * inDim + i] = (float)(accumulate ? dx[r * inDim + i] + sum : sum);
        }
    }

    /// <inheritdoc/>
    public override void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim)
    {
        var dy = Span(dOutput);
        var x = Span(input);
        var dw = Span(dWeight);
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        for (var i = 0; i < inDim; i++)
            dw[o * inDim + i] += dy[r * outDim + o] * x[r * inDim + i];
    }

    /// <inheritdoc/>
    public override void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table) => Rotate(Span(grad), rows, heads, startPos, table, -1);

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
        var (kvDim, scale) = (kvHeads * headDim, 1 / Math.Sqrt(headDim));
        for (var r = 0; r < rows; r++)
        for (var h = 0; h < heads; h++)
        {
            var p = AttentionWeights(query, k, r, h, startPos + r + 1, heads, kvHeads, headDim);
            var (row, kv) = ((r * heads + h) * headDim, h / (heads / kvHeads) * headDim);
            var ds = new double[p.Length];
            var weighted = 0.0;
            for (var t = 0; t < p.Length; t++)
            {
                ds[t] = Dot(dO.Slice(row, headDim), v.Slice(t * kvDim + kv, headDim));
                weighted += p[t] * ds[t];
            }
            for (var t = 0; t < p.Length; t++) ds[t] = p[t] * (ds[t] - weighted) * scale;
            for (var d = 0; d < headDim; d++)
            {
                var sum = 0.0;
                for (var t = 0; t < p.Length; t++) sum += ds[t] * k[t * kvDim + kv + d];
                dq[row + d] = (float)sum;
            }
            for (var t = 0; t < p.Length; t++)
            for (var d = 0; d < headDim; d++)
            {
                dk[t * kvDim + kv + d] += (float)(ds[t] * query[row + d]);
                dv[t * kvDim + kv + d] += (float)(p[t] * dO[row + d]);
            }
        }
    }

    /// <inheritdoc/>
    public override void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale)
    {
        var z = Span(logits);
        var target = Span(targets);
        var stats = Span(rowStats);
        var q = new double[cols];
        for (var r = 0; r < rows; r++)
        {
            var row = z.Slice(r * cols, cols);
            var p = target.Slice(r * cols, cols);
            var agree = IndexOfMax(row) == IndexOfMax(p) ? 1f : 0f; // the arg max of q is the arg max of the logits
            for (var c = 0; c < cols; c++) q[c] = row[c];
            Softmax(q);
            double loss = 0, overlap = 0;
            for (var c = 0; c < cols; c++)
            {
                if (p[c] > 0) loss -= p[c] * Math.Log(q[c]);
                overlap += Math.Min(p[c], q[c]);
                row[c] = (float)(gradScale * (q[c] - p[c]));
            }
            (stats[3 * r], stats[3 * r + 1], stats[3 * r + 2]) = ((float)loss, (float)overlap, agree);
        }
    }

    /// <inheritdoc/>
    public override void ClampValues(DeviceTensor tensor, float limit)
    {
        var x = Span(tensor);
        for (var i = 0; i < x.Length; i++) x[i] = Math.Clamp(x[i], -limit, limit);
    }

    /// <inheritdoc/>
    public override void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step)
    {
        var p = Span(parameters);
        var g = Span(gradients);
        var m = Span(moment1);
        var v = Span(moment2);
        for (var i = 0; i < p.Length; i++)
        {
            var m1 = step.Beta1 * (double)m[i] + (1 - (double)step.Beta1) * g[i];
            var m2 = step.Beta2 * (double)v[i] + (1 - (double)step.Beta2) * g[i] * g[i];
            var decayed = p[i] * (1 - (double)step.LearningRate * step.WeightDecay);
            p[i] = (float)(decayed - step.LearningRate / (double)step.BiasCorrection1 * m1 / (Math.Sqrt(m2) / Math.Sqrt(step.BiasCorrection2) + step.Epsilon));
            (m[i], v[i]) = ((float)m1, (float)m2);
        }
    }

    private static float[] Values(DeviceWeight weight) => ((Weight)weight).Values;

    /// <summary>An RMSNorm weight's gains; norms are never quantized.</summary>
    private static float[] NormGains(DeviceWeight weight) => weight.Type.IsQuantized() ? throw QuantizedNorm(weight.Type) : Values(weight);

    /// <summary>A weight's values, widened or dequantized exactly when it is uploaded.</summary>
    private sealed class Weight : DeviceWeight
    {
        private ReferenceDevice? _owner;

        public Weight(ReferenceDevice owner, ElementType type, ReadOnlySpan<byte> data, int rows, int cols) : base(type, rows, cols)
        {
            _owner = owner;
            if (data.Length != Bytes) throw new ArgumentException($"{data.Length} bytes for a {type} weight [{rows}, {cols}]");
            Values = new float[checked(rows * cols)];
            ElementTypes.ToFloats(type, data, Values);
        }

        public float[] Values { get; }

        /// <inheritdoc/>
        public override void Dispose()
        {
            if (_owner is null) return;
            _owner.AllocatedBytes -= Bytes;
            _owner = null;
        }
    }
}
