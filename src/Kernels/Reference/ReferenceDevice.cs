using System.Numerics.Tensors;
using System.Runtime.InteropServices;

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
    private const long ParallelMatMulElements = 1 << 20;
    private float[] _scores = [];

    public override string Kind => "cpu";
    public override string Name => $"managed reference (System.Numerics.Tensors, {Environment.ProcessorCount} cores)";

    public override DeviceTensor Allocate(int length)
    {
        AllocatedBytes += 4L * length;
        return new ManagedTensor(new float[length], 0, length);
    }

    public override DeviceWeight UploadWeight(WeightType type, ReadOnlySpan<byte> data, int rows, int cols)
    {
        var weight = new ManagedWeight(type, data, rows, cols);
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
        if ((long)w.Rows * w.Cols >= ParallelMatMulElements && Environment.ProcessorCount > 1)
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
    /// accumulators); for a block, each weight row (read, and widened, once) against tiles of 4 input
    /// rows. The summation order of each element is the same in every tile (see <see cref="ManagedKernels"/>).</summary>
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
                ManagedKernels.Dot4x1(weight.RowBlock(o, 4), row, dots);
                for (var k = 0; k < 4; k++) Store(ref y[o + k], dots[k], accumulate);
            }
        }
        for (; o < end; o++)
        {
            var w = weight.RowBlock(o, 1);
            var r = 0;
            for (; r + 4 <= rows; r += 4)
            {
                ManagedKernels.Dot1x4(w, x.Slice(r * cols, 4 * cols), dots);
                for (var k = 0; k < 4; k++) Store(ref y[(r + k) * outDim + o], dots[k], accumulate);
            }
            for (; r < rows; r++) Store(ref y[r * outDim + o], ManagedKernels.Dot(w, x.Slice(r * cols, cols)), accumulate);
        }
    }

    private static void Store(ref float target, float dot, bool accumulate) => target = accumulate ? target + dot : dot;

    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table)
    {
        var v = Span(x);
        var cos = Span(table.Cos);
        var sin = Span(table.Sin);
        var headDim = table.HeadDim;
        var half = headDim / 2;
        for (var r = 0; r < rows; r++)
        {
            var angles = (startPos + r) * half;
            for (var h = 0; h < heads; h++)
            {
                var head = v.Slice((r * heads + h) * headDim, headDim);
                for (var i = 0; i < half; i++)
                {
                    float x0 = head[i], x1 = head[i + half], c = cos[angles + i], s = sin[angles + i];
                    head[i] = x0 * c - x1 * s;
                    head[i + half] = x0 * s + x1 * c;
                }
            }
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
                var t = 0;
                for (; t + 4 <= length; t += 4) ManagedKernels.Dot1x4Strided(qh, k, t * kvDim + kvOffset, kvDim, scores.Slice(t, 4));
                for (; t < length; t++) scores[t] = ManagedKernels.Dot(qh, k.Slice(t * kvDim + kvOffset, headDim));
                TensorPrimitives.Multiply(scores, scale, scores);
                StableSoftmax(scores);
                ManagedKernels.WeightedSum(scores, v, kvOffset, kvDim, o.Slice((r * heads + h) * headDim, headDim));
            }
        }
    }

    public override void SwiGlu(DeviceTensor gate, DeviceTensor up, int length)
    {
        var g = Span(gate)[..length];
        var u = Span(up)[..length];
        for (var i = 0; i < length; i++) g[i] = g[i] / (1f + MathF.Exp(-g[i])) * u[i];
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
            var max = row[best];
            var sum = 0f;
            foreach (var value in row) sum += MathF.Exp(value - max);
            result[r] = new TopToken(best, 1f / sum);
        }
    }

    public override void Synchronize()
    {
    }

    public override void Dispose()
    {
    }

    private static Span<float> Span(DeviceTensor tensor) => ((ManagedTensor)tensor).Span;

    private sealed class ManagedTensor(float[] array, int offset, int length) : DeviceTensor
    {
        public Span<float> Span => array.AsSpan(offset, length);
        public override int Length => length;

        public override DeviceTensor Slice(int start, int count)
        {
            ArgumentOutOfRangeException.ThrowIfGreaterThan((long)start + count, length);
            return new ManagedTensor(array, offset + start, count);
        }

        public override void Dispose()
        {
        }
    }

    private sealed class ManagedWeight : DeviceWeight
    {
        private readonly float[]? _f32;
        private readonly ushort[]? _u16;

        public ManagedWeight(WeightType type, ReadOnlySpan<byte> data, int rows, int cols) : base(type, rows, cols)
        {
            if (data.Length != Bytes) throw new ArgumentException($"{data.Length} bytes for a {type} weight [{rows}, {cols}]");
            if (type == WeightType.F32) _f32 = MemoryMarshal.Cast<byte, float>(data).ToArray();
            else _u16 = MemoryMarshal.Cast<byte, ushort>(data).ToArray();
        }

        [ThreadStatic] private static float[]? t_widened;

        /// <summary>Rows [first, first + count) as floats: the stored rows for F32, else widened into a
        /// per-thread scratch buffer (valid until the next call on this thread). 16-bit weights stay
        /// 16-bit in memory; only the rows in use are widened, into cache-resident scratch.</summary>
        public ReadOnlySpan<float> RowBlock(int first, int count)
        {
            var length = count * Cols;
            if (_f32 is not null) return _f32.AsSpan(first * Cols, length);
            if (t_widened is null || t_widened.Length < length) t_widened = new float[Math.Max(length, 4 * Cols)];
            var scratch = t_widened.AsSpan(0, length);
            Widen(_u16.AsSpan(first * Cols, length), scratch);
            return scratch;
        }

        public void Row(int index, Span<float> destination)
        {
            if (_f32 is not null) _f32.AsSpan(index * Cols, Cols).CopyTo(destination);
            else Widen(_u16.AsSpan(index * Cols, Cols), destination);
        }

        private void Widen(ReadOnlySpan<ushort> source, Span<float> destination)
        {
            if (Type == WeightType.F16) ManagedKernels.WidenF16(source, destination);
            else ManagedKernels.WidenBF16(source, destination);
        }

        public override void Dispose()
        {
        }
    }
}
