using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Matrix product with a Linear weight [out, in]: output[r, o] (+)= sum_i input[r, i] * w[o, i].
///   launch: output features in chunks of whole 4-row tiles over the device's <see cref="Threads"/> (<see cref="Parallel"/>) once
///           a matrix has 2^20 multiply-adds (counting at most 4 input rows), else on the calling thread.
///           One input row: tiles of 4 weight rows (<see cref="CpuWeight.Dot4x1"/>, 16-bit and quantized rows
///           converted in registers); 2-8 rows (verification): 4x4 tiles converting 4 weight rows in registers
///           once per tile of 4 input rows (<see cref="CpuWeight.Dot4x4"/>). More rows: panels of weight rows as floats (~192 KB, in L2), each run
///           against every tile of 4 input rows by 4x4 tiles (<see cref="FloatTiles.Dot4x4"/>). Every tile
///           forms each dot product in the one canonical order on the weight's exact float values
///           (<see cref="FloatTiles"/>), so a block equals one-row calls bit for bit.
///   bytes:  the weight once (out * in * its bytes per value), each panel written and read from L2, input
///           rows once per panel, 4 * rows * out written.
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
    /// accumulators, rows converted in registers); for 2-8 rows, 4x4 register tiles; for more, panels
    /// (<see cref="Panel"/>), which also take the last rows of a weight whose row count is not a multiple of 4.</summary>
    private static void MatMulRows(HostTensor input, CpuWeight weight, HostTensor output, int rows, int outDim, bool accumulate, int first, int end)
    {
        var cols = weight.Cols;
        var x = input.Span;
        var y = output.Span;
        Span<float> dots = stackalloc float[16];
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
        else if (rows <= RegisterTileRows) // verification: each 4 weight rows converted in registers once per tile of 4 input rows, read from memory once
        {
            for (; o + 4 <= end; o += 4)
            for (var r = 0; r < rows; r += 4)
            {
                var last = Math.Min(4, rows - r) - 1;
                var x0 = InputRow(x, r, 0, last, cols);
                var x1 = InputRow(x, r, 1, last, cols);
                var x2 = InputRow(x, r, 2, last, cols);
                var x3 = InputRow(x, r, 3, last, cols);
                weight.Dot4x4(o, x0, x1, x2, x3, dots);
                for (var j = 0; j < 4; j++)
                for (var k = 0; k <= last; k++)
                    Store(ref y[(r + k) * outDim + o + j], dots[4 * j + k], accumulate);
            }
        }
        var blockRows = BlockRows(weight);
        for (int block = o, blockEnd; block < end; block = blockEnd)
        {
            blockEnd = Math.Min(Math.Min(end, block + blockRows), weight.SegmentEnd(block)); // a panel's rows lie together in memory
            Panel(x, weight, y, rows, outDim, accumulate, block, blockEnd);
        }
    }

    /// <summary>Most input rows whose blocks convert weight rows in registers (<see cref="CpuWeight.Dot4x4"/>)
    /// rather than into panels: up to two tiles of 4, which covers Kangaroo's verification blocks.</summary>
    private const int RegisterTileRows = 8;

    /// <summary>Bytes of a panel: the float values of the weight rows a block of output features holds.
    /// Each tile of 4 input rows (in L1) runs over the panel while it sits in L2, so the input rows are
    /// streamed once per panel instead of once per weight row, and quantized or 16-bit rows are converted
    /// once per panel, not once per tile.</summary>
    private const int PanelBytes = 192 << 10;

    /// <summary>Output features per panel: a whole number of 4-row tiles.</summary>
    private static int BlockRows(CpuWeight weight) => Math.Max(4, PanelBytes / (4 * weight.Cols)) & ~3;

    /// <summary>Rows [first, end) as a panel of floats (the stored rows for F32) against every tile of 4 input
    /// rows: 4x4 tiles (<see cref="FloatTiles.Dot4x4"/>); a tile of one or two input rows, or of fewer than 4
    /// weight rows, by <see cref="FloatTiles.Dot4"/> (a short side repeats its last row).</summary>
    private static void Panel(ReadOnlySpan<float> x, CpuWeight weight, Span<float> y, int rows, int outDim, bool accumulate, int first, int end)
    {
        var cols = weight.Cols;
        var panel = weight.RowBlock(first, end - first);
        Span<float> dots = stackalloc float[16];
        Span<float> four = stackalloc float[4];
        for (var r = 0; r < rows; r += 4)
        {
            var last = Math.Min(4, rows - r) - 1;
            var x0 = InputRow(x, r, 0, last, cols);
            var x1 = InputRow(x, r, 1, last, cols);
            var x2 = InputRow(x, r, 2, last, cols);
            var x3 = InputRow(x, r, 3, last, cols);
            for (var o = first; o < end; o += 4)
            {
                var wl = Math.Min(4, end - o) - 1;
                var w = panel[((o - first) * cols)..];
                if (wl == 3 && last >= 2)
                {
                    FloatTiles.Dot4x4(w, x0, x1, x2, x3, dots);
                }
                else if (last >= 2)
                {
                    for (var j = 0; j <= wl; j++) FloatTiles.Dot4(w.Slice(j * cols, cols), x0, x1, x2, x3, dots[(4 * j)..]);
                }
                else
                {
                    var (w0, w1, w2, w3) = (0, Math.Min(1, wl) * cols, Math.Min(2, wl) * cols, wl * cols);
                    for (var k = 0; k <= last; k++)
                    {
                        FloatTiles.Dot4(k == 0 ? x0 : x1, w.Slice(w0, cols), w.Slice(w1, cols), w.Slice(w2, cols), w.Slice(w3, cols), four);
                        for (var j = 0; j <= wl; j++) dots[4 * j + k] = four[j];
                    }
                }
                for (var j = 0; j <= wl; j++)
                for (var k = 0; k <= last; k++)
                    Store(ref y[(r + k) * outDim + o + j], dots[4 * j + k], accumulate);
            }
        }
    }

    /// <summary>Row k of the tile of input rows from <paramref name="r"/>, whose last row is r + last: a short
    /// tile repeats its last row (and its results are not stored).</summary>
    private static ReadOnlySpan<float> InputRow(ReadOnlySpan<float> x, int r, int k, int last, int cols) => x.Slice((r + Math.Min(k, last)) * cols, cols);

    private static void Store(ref float target, float dot, bool accumulate) => target = accumulate ? target + dot : dot;
}
