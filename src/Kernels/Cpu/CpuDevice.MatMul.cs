namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Matrix product with a Linear weight [out, in]: output[r, o] (+)= sum_i input[r, i] * w[o, i].
///   launch: output features in chunks of whole 4-row tiles over the device's <see cref="Threads"/> (<see cref="Parallel"/>) once
///           a matrix has 2^20 multiply-adds (counting at most 4 input rows), else on the calling thread.
///           One input row: tiles of 4 weight rows (<see cref="CpuWeight.Dot4x1"/>). A block: pairs of
///           weight rows against tiles of 4 input rows (<see cref="FloatTiles.Dot2x4"/>, 16-bit rows widened
///           once per pair), or for quantized rows one row against tiles of 4 input rows
///           (<see cref="BlockTiles.Dot1x4{TBlocks}"/>). Every tile forms each dot product in its type's one
///           order, so a block equals one-row calls bit for bit.
///   bytes:  the weight once (out * in * its bytes per value), input rows from cache, 4 * rows * out written.
/// </summary>
public sealed partial class CpuDevice
{
    /// <summary>Multiply-adds (counting at most four rows) from which a matmul is split over the cores.</summary>
    private const long ParallelMatMulElements = 1 << 20;

    /// <inheritdoc/>
    public override void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false, int outputStride = 0)
    {
        var w = (CpuWeight)weight;
        var (x, y) = (HostTensor.Of(input, this), HostTensor.Of(output, this));
        var stride = OutputStride(w, outputStride);
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfLessThan(x.Length, rows * w.Cols, nameof(input));
        ArgumentOutOfRangeException.ThrowIfLessThan(y.Length, (rows - 1) * stride + w.Rows, nameof(output));
        if ((long)w.Rows * w.Cols * Math.Min(rows, 4) >= ParallelMatMulElements && Threads > 1)
        {
            // Chunks of whole 4-row tiles; several per core so that a core slowed by other work
            // does not hold up the rest.
            var chunks = Threads * 4;
            var perChunk = (w.Rows / chunks + 3) & ~3;
            Parallel.For(0, (w.Rows + perChunk - 1) / perChunk, _parallel, c => MatMulRows(x, w, y, rows, stride, accumulate, c * perChunk, Math.Min(w.Rows, (c + 1) * perChunk)));
        }
        else
        {
            MatMulRows(x, w, y, rows, stride, accumulate, 0, w.Rows);
        }
    }

    /// <summary>Output features [first, end) (output rows <paramref name="outDim"/> apart): for one input row, tiles of 4 weight rows (4 independent
    /// accumulators, 16-bit rows widened in registers); for a block, pairs of weight rows (read, and
    /// widened, once) against tiles of 4 input rows (8 accumulators), or for quantized rows one row
    /// (its quants converted once) against tiles of 4 input rows.</summary>
    private static void MatMulRows(HostTensor input, CpuWeight weight, HostTensor output, int rows, int outDim, bool accumulate, int first, int end)
    {
        var cols = weight.Cols;
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
                    FloatTiles.Dot2x2(w[..cols], w.Slice(cols, cols), x0, x1, pairDots, ahead);
                    for (var k = 0; k <= last; k++)
                    {
                        Store(ref y[(r + k) * outDim + o], pairDots[k], accumulate);
                        Store(ref y[(r + k) * outDim + o + 1], pairDots[4 + k], accumulate);
                    }
                }
                else if (pair)
                {
                    FloatTiles.Dot2x4(w[..cols], w.Slice(cols, cols), x0, x1, x2, x3, pairDots, ahead);
                    for (var k = 0; k <= last; k++)
                    {
                        Store(ref y[(r + k) * outDim + o], pairDots[k], accumulate);
                        Store(ref y[(r + k) * outDim + o + 1], pairDots[4 + k], accumulate);
                    }
                }
                else
                {
                    FloatTiles.Dot4(w, x0, x1, x2, x3, dots);
                    for (var k = 0; k <= last; k++) Store(ref y[(r + k) * outDim + o], dots[k], accumulate);
                }
            }
        }
    }

    private static void Store(ref float target, float dot, bool accumulate) => target = accumulate ? target + dot : dot;
}
