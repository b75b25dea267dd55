using System.Numerics.Tensors;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// The <c>cpu</c> device: every operation in managed code, tuned (vector tiles in <see cref="FloatTiles"/>,
/// <see cref="HalfTiles"/> and <see cref="BlockTiles"/>, System.Numerics.Tensors for element-wise and row
/// operations), tested against <see cref="Reference.ReferenceDevice"/>. Matrix products split their output
/// rows across cores when a matrix is large enough to pay for it; each output element is one dot product
/// in a fixed summation order whatever the number of rows. Nothing is allocated per call on the decode path.
/// This file: buffers, and the row-wise operations (one pass over each row: embedding, RMSNorm, bias,
/// rotary, SwiGLU, add, softmax, arg max), which move their rows' bytes once and compute little.
/// </summary>
public sealed partial class CpuDevice : HostDevice
{
    private float[] _exponentials = [];
    private readonly ParallelOptions _parallel;

    /// <summary>A managed device running large matrix products on <paramref name="threads"/> threads.</summary>
    /// <param name="threads">Threads a large matrix product is split over; 0 (the default): one per core.</param>
    public CpuDevice(int threads = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        Threads = threads == 0 ? Environment.ProcessorCount : threads;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = Threads };
    }

    /// <summary>Threads a large matrix product is split over (every result is the same whatever their number).</summary>
    public int Threads { get; }

    /// <inheritdoc/>
    public override string Kind => "cpu";
    /// <inheritdoc/>
    public override string Name => $"managed, vectorised ({Threads} of {Environment.ProcessorCount} cores)";

    /// <inheritdoc/>
    public override unsafe DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<byte> data, int rows, int cols)
    {
        if (data.Length != type.ByteCount(rows, cols)) throw new ArgumentException($"{data.Length} bytes for a {type} weight [{rows}, {cols}]");
        fixed (byte* bytes = data) return new CpuWeight(this, type, [new WeightRows((nint)bytes, rows)], rows, cols);
    }

    /// <summary>Leased parts are read in place (<see cref="CpuWeight"/>), the others copied.</summary>
    public override DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<WeightRows> parts, int cols)
    {
        try
        {
            var rows = 0;
            foreach (var part in parts) rows = checked(rows + part.Rows);
            return new CpuWeight(this, type, parts, rows, cols);
        }
        catch
        {
            foreach (var part in parts) part.Lease?.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public override void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output)
    {
        var weights = (CpuWeight)table;
        var o = Span(output);
        for (var r = 0; r < tokens.Length; r++)
        {
            if ((uint)tokens[r] >= (uint)weights.Rows) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[r]} is outside the vocabulary of {weights.Rows}");
            weights.Row(tokens[r], o.Slice(r * weights.Cols, weights.Cols));
        }
    }

    /// <inheritdoc/>
    public override void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps)
    {
        var w = (CpuWeight)weight;
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

    /// <inheritdoc/>
    public override void AddBias(DeviceTensor x, DeviceTensor bias, int rows)
    {
        var b = Span(bias);
        var v = Span(x);
        for (var r = 0; r < rows; r++) TensorPrimitives.Add(v.Slice(r * b.Length, b.Length), b, v.Slice(r * b.Length, b.Length));
    }

    /// <inheritdoc/>
    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table) => Rotate(x, rows, heads, startPos, table, 1f);

    /// <summary>Rotates by +angle (forward) or -angle (<paramref name="sinSign"/> = -1: the adjoint, for backward).</summary>
    private void Rotate(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table, float sinSign)
    {
        var v = Span(x);
        var cos = Span(table.Cos);
        var sin = Span(table.Sin);
        var width = heads * table.HeadDim;
        for (var r = 0; r < rows; r++) RotateHeads(v.Slice(r * width, width), startPos + r, table.HeadDim, cos, sin, sinSign);
    }

    /// <summary>Rotates every head of one row, in place, at position <paramref name="pos"/> (cos and sin: the
    /// rotary table's, all positions).</summary>
    private static void RotateHeads(Span<float> row, int pos, int headDim, ReadOnlySpan<float> cosines, ReadOnlySpan<float> sines, float sinSign)
    {
        var half = headDim / 2;
        var cos = cosines.Slice(pos * half, half);
        var sin = sines.Slice(pos * half, half);
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

    /// <inheritdoc/>
    protected override void RotateRow(Span<float> row, int position, RotaryTable table) =>
        RotateHeads(row, position, table.HeadDim, Span(table.Cos), Span(table.Sin), 1f);

    /// <inheritdoc/>
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

    /// <inheritdoc/>
    public override void Add(DeviceTensor target, DeviceTensor addend, int length) =>
        TensorPrimitives.Add(Span(target)[..length], Span(addend)[..length], Span(target)[..length]);

    /// <inheritdoc/>
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

    /// <inheritdoc/>
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

    /// <summary>sum_c e^(row[c] - max), vectorised through a scratch row that only grows: over a large
    /// vocabulary a scalar exp per logit would cost more than the rest of the arg max.</summary>
    private float SumOfExponentials(ReadOnlySpan<float> row, float max)
    {
        if (_exponentials.Length < row.Length) _exponentials = new float[row.Length];
        var shifted = _exponentials.AsSpan(0, row.Length);
        TensorPrimitives.Subtract(row, max, shifted);
        TensorPrimitives.Exp(shifted, shifted);
        return TensorPrimitives.Sum(shifted);
    }
}
