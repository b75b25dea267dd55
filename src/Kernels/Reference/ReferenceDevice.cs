using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Reference;

/// <summary>
/// The managed implementation of every operation (System.Numerics.Tensors): the oracle each kernel is
/// tested against, and the <c>cpu</c> device used when there is no GPU. Matrix products split their
/// output rows across cores when a matrix is large enough to pay for it; each output element is one
/// dot product in a fixed summation order (<see cref="ManagedKernels"/>), whatever the number of rows.
/// Nothing is allocated per call on the decode path.
/// </summary>
public sealed class ReferenceDevice : ComputeDevice
{
    /// <summary>Multiply-adds (counting at most four rows) from which a matmul is split over the cores.</summary>
    private const long ParallelMatMulElements = 1 << 20;
    private float[] _scores = [];
    private float[] _exponentials = [];

    public override string Kind => "cpu";
    public override string Name => $"managed reference (System.Numerics.Tensors, {Environment.ProcessorCount} cores)";

    public override long MemoryBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    public override DeviceTensor Allocate(int length)
    {
        AllocatedBytes += 4L * length;
        return new ManagedTensor(new float[length], 0, length, this);
    }

    public override DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<byte> data, int rows, int cols)
    {
        var weight = new ManagedWeight(this, type, data, rows, cols);
        AllocatedBytes += weight.Bytes;
        return weight;
    }

    public override void Upload(ReadOnlySpan<float> source, DeviceTensor destination) => source.CopyTo(Span(destination));

    public override void Download(DeviceTensor source, Span<float> destination) => Span(source)[..destination.Length].CopyTo(destination);

    public override void Copy(DeviceTensor source, DeviceTensor destination) => Span(source).CopyTo(Span(destination));

    public override void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output)
    {
        var weights = (ManagedWeight)table;
        var o = Span(output);
        for (var r = 0; r < tokens.Length; r++)
        {
            if ((uint)tokens[r] >= (uint)weights.Rows) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[r]} is outside the vocabulary of {weights.Rows}");
            weights.Row(tokens[r], o.Slice(r * weights.Cols, weights.Cols));
        }
    }

    public override void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps)
    {
        var w = (ManagedWeight)weight;
        if (w.Type.IsQuantized()) throw QuantizedNorm(w.Type);
        var dim = w.Cols;
        Span<float> gamma = dim <= 4096 ? stackalloc float[dim] : new float[dim];
        w.Row(0, gamma);
        var x = Span(input);
        var y = Span(output);
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * dim, dim);
            var scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / dim + eps);
            var target = y.Slice(r * dim, dim);
            TensorPrimitives.Multiply(row, scale, target);
            TensorPrimitives.Multiply(target, gamma, target);
        }
    }

    public override void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false)
    {
        var w = (ManagedWeight)weight;
        var x = (ManagedTensor)input;
        var y = (ManagedTensor)output;
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfLessThan(x.Length, rows * w.Cols, nameof(input));
        ArgumentOutOfRangeException.ThrowIfLessThan(y.Length, rows * w.Rows, nameof(output));
        if ((long)w.Rows * w.Cols * Math.Min(rows, 4) >= ParallelMatMulElements && Environment.ProcessorCount > 1)
        {
            // Chunks of whole 4-row tiles; several per core so that a core slowed by other work
            // does not hold up the rest.
            var chunks = Environment.ProcessorCount * 4;
            var perChunk = (w.Rows / chunks + 3) & ~3;
            Parallel.For(0, (w.Rows + perChunk - 1) / perChunk, c => MatMulRows(x, w, y, rows, accumulate, c * perChunk, Math.Min(w.Rows, (c + 1) * perChunk)));
        }
        else
        {
            MatMulRows(x, w, y, rows, accumulate, 0, w.Rows);
        }
    }

    /// <summary>Output features [first, end): for one input row, tiles of 4 weight rows (4 independent
    /// accumulators, 16-bit rows widened in registers); for a block, pairs of weight rows (read, and
    /// widened, once) against tiles of 4 input rows (8 accumulators), or for quantized rows one row
    /// (its quants converted once) against tiles of 4 input rows. The summation order of each element
    /// is the same in every tile (see <see cref="ManagedKernels"/>).</summary>
    private static void MatMulRows(ManagedTensor input, ManagedWeight weight, ManagedTensor output, int rows, bool accumulate, int first, int end)
    {
        var cols = weight.Cols;
        var outDim = weight.Rows;
        var x = input.Span;
        var y = output.Span;
        Span<float> dots = stackalloc float[4];
        var o = first;
        if (rows == 1)
        {
            var row = x[..cols];
            for (; o + 4 <= end; o += 4)
            {
                weight.Dot4x1(o, row, dots);
                for (var k = 0; k < 4; k++) Store(ref y[o + k], dots[k], accumulate);
            }
        }
        if (weight.QuantizedTiles)
        {
            for (; o < end; o++)
            for (var r = 0; r < rows; r += 4)
            {
                var last = Math.Min(4, rows - r) - 1; // a short tile repeats its last row
                weight.Dot1x4(o, x.Slice(r * cols, cols), x.Slice((r + Math.Min(1, last)) * cols, cols), x.Slice((r + Math.Min(2, last)) * cols, cols),
                    x.Slice((r + last) * cols, cols), dots);
                for (var k = 0; k <= last; k++) Store(ref y[(r + k) * outDim + o], dots[k], accumulate);
            }
            return;
        }
        Span<float> pairDots = stackalloc float[8];
        for (; o < end; o += 2)
        {
            var pair = o + 1 < end; // two weight rows (read, and widened, once) against each tile of 4 input rows
            var w = weight.RowBlock(o, pair ? 2 : 1, out var ahead);
            for (var r = 0; r < rows; r += 4)
            {
                var last = Math.Min(4, rows - r) - 1; // a short tile repeats its last row
                var x0 = x.Slice(r * cols, cols);
                var x1 = x.Slice((r + Math.Min(1, last)) * cols, cols);
                var x2 = x.Slice((r + Math.Min(2, last)) * cols, cols);
                var x3 = x.Slice((r + last) * cols, cols);
                if (pair && last < 2)
                {
                    ManagedKernels.Dot2x2(w[..cols], w.Slice(cols, cols), x0, x1, pairDots, ahead);
                    for (var k = 0; k <= last; k++)
                    {
                        Store(ref y[(r + k) * outDim + o], pairDots[k], accumulate);
                        Store(ref y[(r + k) * outDim + o + 1], pairDots[4 + k], accumulate);
                    }
                }
                else if (pair)
                {
                    ManagedKernels.Dot2x4(w[..cols], w.Slice(cols, cols), x0, x1, x2, x3, pairDots, ahead);
                    for (var k = 0; k <= last; k++)
                    {
                        Store(ref y[(r + k) * outDim + o], pairDots[k], accumulate);
                        Store(ref y[(r + k) * outDim + o + 1], pairDots[4 + k], accumulate);
                    }
                }
                else
                {
                    ManagedKernels.Dot4(w, x0, x1, x2, x3, dots);
                    for (var k = 0; k <= last; k++) Store(ref y[(r + k) * outDim + o], dots[k], accumulate);
                }
            }
        }
    }

    private static void Store(ref float target, float dot, bool accumulate) => target = accumulate ? target + dot : dot;

    public override void AddBias(DeviceTensor x, DeviceTensor bias, int rows)
    {
        var b = Span(bias);
        var v = Span(x);
        for (var r = 0; r < rows; r++) TensorPrimitives.Add(v.Slice(r * b.Length, b.Length), b, v.Slice(r * b.Length, b.Length));
    }

    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table) => Rotate(x, rows, heads, startPos, table, 1f);

    /// <summary>Rotates by +angle (forward) or -angle (<paramref name="sinSign"/> = -1: the adjoint, for backward).</summary>
    private static void Rotate(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table, float sinSign)
    {
        var v = Span(x);
        var width = heads * table.HeadDim;
        for (var r = 0; r < rows; r++) RotateHeads(v.Slice(r * width, width), startPos + r, table, sinSign);
    }

    /// <summary>Rotates every head of one row, in place, at position <paramref name="pos"/>.</summary>
    private static void RotateHeads(Span<float> row, int pos, RotaryTable table, float sinSign)
    {
        var headDim = table.HeadDim;
        var half = headDim / 2;
        var cos = Span(table.Cos).Slice(pos * half, half);
        var sin = Span(table.Sin).Slice(pos * half, half);
        for (var first = 0; first < row.Length; first += headDim)
        {
            var head = row.Slice(first, headDim);
            for (var i = 0; i < half; i++)
            {
                float x0 = head[i], x1 = head[i + half], c = cos[i], s = sinSign * sin[i];
                head[i] = x0 * c - x1 * s;
                head[i + half] = x0 * s + x1 * c;
            }
        }
    }

    public override void SplitQkv(DeviceTensor qkv, DeviceTensor query, DeviceTensor keys, DeviceTensor values,
        int rows, int heads, int kvHeads, int startPos, RotaryTable table)
    {
        var (dim, kvDim) = (heads * table.HeadDim, kvHeads * table.HeadDim);
        var source = Span(qkv);
        for (var r = 0; r < rows; r++)
        {
            var row = source.Slice(r * (dim + 2 * kvDim), dim + 2 * kvDim);
            var qr = Span(query).Slice(r * dim, dim);
            var kr = Span(keys).Slice(r * kvDim, kvDim);
            row[..dim].CopyTo(qr);
            row.Slice(dim, kvDim).CopyTo(kr);
            row.Slice(dim + kvDim, kvDim).CopyTo(Span(values).Slice(r * kvDim, kvDim));
            RotateHeads(qr, startPos + r, table, 1f);
            RotateHeads(kr, startPos + r, table, 1f);
        }
    }

    public override void Attention(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor output,
        int rows, int startPos, int heads, int kvHeads, int headDim)
    {
        var query = Span(q);
        var k = Span(keys);
        var v = Span(values);
        var o = Span(output);
        var kvDim = kvHeads * headDim;
        var group = heads / kvHeads;
        var scale = 1f / MathF.Sqrt(headDim);
        if (_scores.Length < startPos + rows) _scores = new float[Math.Max(startPos + rows, 2 * _scores.Length)]; // grows by doubling, not every token
        for (var r = 0; r < rows; r++)
        {
            var length = startPos + r + 1;
            var scores = _scores.AsSpan(0, length);
            for (var h = 0; h < heads; h++)
            {
                var qh = query.Slice((r * heads + h) * headDim, headDim);
                var kvOffset = h / group * headDim;
                AttentionWeights(qh, k, kvOffset, kvDim, scale, scores);
                ManagedKernels.WeightedSum(scores, v, kvOffset, kvDim, o.Slice((r * heads + h) * headDim, headDim));
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
            ManagedKernels.Dot4(q, keys.Slice(t * kvDim + kvOffset, headDim), keys.Slice((t + Math.Min(1, last)) * kvDim + kvOffset, headDim),
                keys.Slice((t + Math.Min(2, last)) * kvDim + kvOffset, headDim), keys.Slice((t + last) * kvDim + kvOffset, headDim), dots);
            dots[..(last + 1)].CopyTo(p[t..]);
        }
        TensorPrimitives.Multiply(p, scale, p);
        StableSoftmax(p);
    }

    public override void SwiGlu(DeviceTensor gateUp, DeviceTensor output, int rows, int hiddenDim)
    {
        var source = Span(gateUp);
        var y = Span(output);
        for (var r = 0; r < rows; r++)
        {
            var gate = source.Slice(2 * r * hiddenDim, hiddenDim);
            var up = source.Slice((2 * r + 1) * hiddenDim, hiddenDim);
            var o = y.Slice(r * hiddenDim, hiddenDim);
            for (var i = 0; i < hiddenDim; i++) o[i] = gate[i] / (1f + MathF.Exp(-gate[i])) * up[i];
        }
    }

    public override void Add(DeviceTensor target, DeviceTensor addend, int length) =>
        TensorPrimitives.Add(Span(target)[..length], Span(addend)[..length], Span(target)[..length]);

    public override void Softmax(DeviceTensor logits, int rows, int cols, float temperature)
    {
        var x = Span(logits);
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * cols, cols);
            if (temperature != 1f) TensorPrimitives.Divide(row, temperature, row);
            StableSoftmax(row);
        }
    }

    /// <summary>softmax computed as exp(x - max) / sum, which cannot overflow.</summary>
    private static void StableSoftmax(Span<float> row)
    {
        TensorPrimitives.Subtract(row, TensorPrimitives.Max(row), row);
        TensorPrimitives.Exp(row, row);
        TensorPrimitives.Divide(row, TensorPrimitives.Sum(row), row);
    }

    public override void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result)
    {
        var x = Span(logits);
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * cols, cols);
            var best = TensorPrimitives.IndexOfMax(row);
            result[r] = new TopToken(best, 1f / SumOfExponentials(row, row[best]));
        }
    }

    /// <summary>sum_c e^(row[c] - max), vectorised through a scratch row that only grows (a scalar exp
    /// loop was most of a 32k-vocabulary arg max).</summary>
    private float SumOfExponentials(ReadOnlySpan<float> row, float max)
    {
        if (_exponentials.Length < row.Length) _exponentials = new float[row.Length];
        var shifted = _exponentials.AsSpan(0, row.Length);
        TensorPrimitives.Subtract(row, max, shifted);
        TensorPrimitives.Exp(shifted, shifted);
        return TensorPrimitives.Sum(shifted);
    }

    public override void Fill(DeviceTensor tensor, float value) => Span(tensor).Fill(value);

    public override void UpdateWeight(DeviceTensor source, DeviceWeight destination) =>
        Span(source)[..checked(destination.Rows * destination.Cols)].CopyTo(((ManagedWeight)destination).Writable);

    public override void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput,
        DeviceTensor dWeight, int rows, float eps, bool accumulate = false)
    {
        var w = (ManagedWeight)weight;
        if (w.Type.IsQuantized()) throw QuantizedNorm(w.Type);
        var dim = w.Cols;
        var gamma = new float[dim];
        var weighted = new float[dim];
        w.Row(0, gamma.AsSpan());
        var x = Span(input);
        var dy = Span(dOutput);
        var dGamma = Span(dWeight)[..dim];
        for (var r = 0; r < rows; r++)
        {
            var row = x.Slice(r * dim, dim);
            var dRow = dy.Slice(r * dim, dim);
            var scale = 1f / MathF.Sqrt(TensorPrimitives.SumOfSquares(row) / dim + eps);
            for (var i = 0; i < dim; i++) dGamma[i] += dRow[i] * row[i] * scale;
            if (dInput is null) continue;
            TensorPrimitives.Multiply(dRow, gamma, weighted);
            var c = TensorPrimitives.Dot(weighted, row);
            var k = scale * scale * scale * c / dim;
            var target = Span(dInput).Slice(r * dim, dim);
            for (var i = 0; i < dim; i++)
            {
                var g = scale * weighted[i] - k * row[i];
                target[i] = accumulate ? target[i] + g : g;
            }
        }
    }

    public override void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false)
    {
        var w = (ManagedWeight)weight;
        var inDim = w.Cols;
        var outDim = w.Rows;
        var dy = Span(dOutput);
        var dx = Span(dInput)[..(rows * inDim)];
        if (!accumulate) dx.Clear();
        for (var o = 0; o < outDim; o++)
        {
            var row = w.RowBlock(o, 1, out _);
            for (var r = 0; r < rows; r++)
            {
                var target = dx.Slice(r * inDim, inDim);
                TensorPrimitives.MultiplyAdd(row, dy[r * outDim + o], target, target);
            }
        }
    }

    public override void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim)
    {
        var dy = Span(dOutput);
        var x = Span(input);
        var dw = Span(dWeight);
        for (var r = 0; r < rows; r++)
        {
            var xRow = x.Slice(r * inDim, inDim);
            for (var o = 0; o < outDim; o++)
            {
                var target = dw.Slice(o * inDim, inDim);
                TensorPrimitives.MultiplyAdd(xRow, dy[r * outDim + o], target, target);
            }
        }
    }

    public override void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table) =>
        Rotate(grad, rows, heads, startPos, table, -1f);

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

    public override void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale)
    {
        var z = Span(logits);
        var p = Span(targets);
        var stats = Span(rowStats);
        for (var r = 0; r < rows; r++)
        {
            var row = z.Slice(r * cols, cols);
            var target = p.Slice(r * cols, cols);
            var max = TensorPrimitives.Max(row);
            var logSum = max + MathF.Log(SumOfExponentials(row, max));
            float loss = 0f, overlap = 0f;
            for (var v = 0; v < cols; v++)
            {
                var logQ = row[v] - logSum;
                var qv = MathF.Exp(logQ);
                if (target[v] > 0f) loss -= target[v] * logQ;
                overlap += MathF.Min(target[v], qv);
                row[v] = qv;
            }
            var agree = TensorPrimitives.IndexOfMax(row) == TensorPrimitives.IndexOfMax(target) ? 1f : 0f;
            for (var v = 0; v < cols; v++) row[v] = gradScale * (row[v] - target[v]);
            stats[r * 3] = loss;
            stats[r * 3 + 1] = overlap;
            stats[r * 3 + 2] = agree;
        }
    }

    public override void ClampValues(DeviceTensor tensor, float limit) =>
        TensorPrimitives.Clamp(Span(tensor), -limit, limit, Span(tensor));

    public override void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step)
    {
        var p = Span(parameters);
        var g = Span(gradients);
        var m = Span(moment1);
        var v = Span(moment2);
        var stepSize = step.LearningRate / step.BiasCorrection1;
        var sqrtCorrection2 = MathF.Sqrt(step.BiasCorrection2);
        var decay = 1f - step.LearningRate * step.WeightDecay;
        for (var i = 0; i < p.Length; i++)
        {
            m[i] = step.Beta1 * m[i] + (1f - step.Beta1) * g[i];
            v[i] = step.Beta2 * v[i] + (1f - step.Beta2) * g[i] * g[i];
            p[i] = p[i] * decay - stepSize * m[i] / (MathF.Sqrt(v[i]) / sqrtCorrection2 + step.Epsilon);
        }
    }

    public override void Synchronize()
    {
    }

    public override void Dispose()
    {
    }

    private static Span<float> Span(DeviceTensor tensor) => ((ManagedTensor)tensor).Span;

    /// <summary>A buffer (<paramref name="owner"/> set: its disposal gives the bytes back to the
    /// device's count) or a view of one (no owner).</summary>
    private sealed class ManagedTensor(float[] array, int offset, int length, ReferenceDevice? owner = null) : DeviceTensor
    {
        private ReferenceDevice? _owner = owner;

        public Span<float> Span => array.AsSpan(offset, length);
        public override int Length => length;

        public override DeviceTensor Slice(int start, int count)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan((long)start + count, length);
            return new ManagedTensor(array, offset + start, count);
        }

        public override void Dispose()
        {
            if (_owner is null) return;
            _owner.AllocatedBytes -= 4L * length;
            _owner = null;
        }
    }

    private sealed class ManagedWeight : DeviceWeight
    {
        private readonly float[]? _f32;
        private readonly ushort[]? _u16;
        private readonly byte[]? _blocks;

        private ReferenceDevice? _owner;

        public ManagedWeight(ReferenceDevice owner, ElementType type, ReadOnlySpan<byte> data, int rows, int cols) : base(type, rows, cols)
        {
            _owner = owner;
            if (data.Length != Bytes) throw new ArgumentException($"{data.Length} bytes for a {type} weight [{rows}, {cols}]");
            if (type == ElementType.F32) _f32 = MemoryMarshal.Cast<byte, float>(data).ToArray();
            else if (type.IsQuantized()) _blocks = data.ToArray();
            else _u16 = MemoryMarshal.Cast<byte, ushort>(data).ToArray();
        }

        /// <summary>The values of an F32 weight, for <see cref="UpdateWeight"/>.</summary>
        public Span<float> Writable => _f32 ?? throw new InvalidOperationException($"only F32 weights can be updated, not {Type}");

        [ThreadStatic] private static float[]? t_widened;

        /// <summary>Rows [first, first + count) as floats: the stored rows for F32, else widened (or
        /// dequantized) into a per-thread scratch buffer (valid until the next call on this thread).
        /// 16-bit and quantized weights stay so in memory; only the rows in use are widened, into
        /// cache-resident scratch. <paramref name="ahead"/>: how far past each returned row the next
        /// block's rows lie, for the tile to prefetch while it streams (0 for scratch, which the
        /// widening already prefetched for).</summary>
        public ReadOnlySpan<float> RowBlock(int first, int count, out int ahead)
        {
            var length = count * Cols;
            if (_f32 is not null)
            {
                ahead = length;
                return _f32.AsSpan(first * Cols, length);
            }
            if (t_widened is null || t_widened.Length < length) t_widened = new float[Math.Max(length, 4 * Cols)];
            var scratch = t_widened.AsSpan(0, length);
            Widen(first, count, scratch, ahead: length);
            ahead = 0;
            return scratch;
        }

        /// <summary>Dots of rows [first, first + 4) with x; 16-bit rows are widened in registers,
        /// quantized rows dequantized a block at a time.</summary>
        public void Dot4x1(int first, ReadOnlySpan<float> x, Span<float> result)
        {
            var ahead = 4 * Cols; // the next 4 rows
            switch (Type)
            {
                case ElementType.F32: ManagedKernels.Dot4(x, _f32.AsSpan(first * Cols, Cols), _f32.AsSpan((first + 1) * Cols, Cols), _f32.AsSpan((first + 2) * Cols, Cols), _f32.AsSpan((first + 3) * Cols, Cols), result, ahead); break;
                case ElementType.F16: ManagedKernels.Dot4x1<F16Widening>(_u16.AsSpan(first * Cols, 4 * Cols), x, result, ahead); break;
                case ElementType.BF16: ManagedKernels.Dot4x1<BF16Widening>(_u16.AsSpan(first * Cols, 4 * Cols), x, result, ahead); break;
                case ElementType.Q8_0 when ManagedKernels.CanDotBlocks: ManagedKernels.Dot4x1Blocks<Q8_0Blocks>(Blocks(first, 4), (int)RowBytes, x, result); break;
                case ElementType.Q4_0 when ManagedKernels.CanDotBlocks: ManagedKernels.Dot4x1Blocks<Q4_0Blocks>(Blocks(first, 4), (int)RowBytes, x, result); break;
                case var _ when Type.IsQuantized(): // quantized rows without AVX2: dequantized into scratch, then the F32 tile
                    var rows = RowBlock(first, 4, out _);
                    ManagedKernels.Dot4(x, rows[..Cols], rows.Slice(Cols, Cols), rows.Slice(2 * Cols, Cols), rows.Slice(3 * Cols, Cols), result);
                    break;
                default:
                    throw ElementTypes.Unsupported(Type, "the cpu device's matmul");
            }
        }

        /// <summary>Whether a block's rows go through <see cref="Dot1x4"/>: quantized rows where the quantized
        /// tiles run (the decode tile's arithmetic, so blocks agree with one-row calls).</summary>
        public bool QuantizedTiles => _blocks is not null && ManagedKernels.CanDotBlocks;

        /// <summary>Dots of quantized row <paramref name="row"/> with four input rows (see <see cref="QuantizedTiles"/>).</summary>
        public void Dot1x4(int row, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> result)
        {
            var ahead = (int)RowBytes; // the next row
            if (Type == ElementType.Q8_0) ManagedKernels.Dot1x4Blocks<Q8_0Blocks>(Blocks(row, 1), x0, x1, x2, x3, result, ahead);
            else ManagedKernels.Dot1x4Blocks<Q4_0Blocks>(Blocks(row, 1), x0, x1, x2, x3, result, ahead);
        }

        public void Row(int index, Span<float> destination)
        {
            if (_f32 is not null) _f32.AsSpan(index * Cols, Cols).CopyTo(destination);
            else Widen(index, 1, destination);
        }

        private long RowBytes => Type.RowBytes(Cols);

        private ReadOnlySpan<byte> Blocks(int first, int count) => _blocks.AsSpan((int)(first * RowBytes), (int)(count * RowBytes));

        private void Widen(int first, int count, Span<float> destination, int ahead = 0)
        {
            var length = count * Cols;
            switch (Type)
            {
                case ElementType.F16: ManagedKernels.Widen<F16Widening>(_u16.AsSpan(first * Cols, length), destination, ahead); break;
                case ElementType.BF16: ManagedKernels.Widen<BF16Widening>(_u16.AsSpan(first * Cols, length), destination, ahead); break;
                case ElementType.Q8_0: ManagedKernels.Dequantize<Q8_0Blocks>(Blocks(first, count), destination); break;
                case ElementType.Q4_0: ManagedKernels.Dequantize<Q4_0Blocks>(Blocks(first, count), destination); break;
                default: throw ElementTypes.Unsupported(Type, "the cpu device's widening");
            }
        }

        public override void Dispose()
        {
            if (_owner is null) return;
            _owner.AllocatedBytes -= Bytes;
            _owner = null;
        }
    }
}
