using System.Runtime.InteropServices;
using static Kangaroo.Native.Tests.Kernels.Numerics;
using static Kangaroo.Native.Tests.Training.Reference64;

namespace Kangaroo.Native.Tests.Training;

/// <summary>
/// Gradient checks of every backward operation of <see cref="ComputeDevice"/>: the device's float32
/// gradient of L = sum(c * op(x)) (c random) must agree with central differences of the float64
/// reference forward, at awkward shapes (widths that are not multiples of 4 or 16, one row and
/// several rows, positions past 0). Bound: max |device - numeric| &lt;= 1e-4 * max(|numeric|, 1e-3)
/// (float32 accumulation over these sizes is good to about 1e-6 of the scale; the numeric gradient
/// with h = 1e-5 in float64 to about 1e-9). Also: splitting rows across calls gives identical bits.
/// </summary>
public sealed class BackwardOpTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    public const double Bound = 1e-4;
    private const float Eps = 1e-5f;


    private static DeviceWeight Weight(ComputeDevice d, float[] values, int rows, int cols) =>
        d.UploadWeight(ElementType.F32, MemoryMarshal.AsBytes(values.AsSpan()), rows, cols);

    private static double Dot(double[] c, double[] y) => c.Zip(y, (a, b) => a * b).Sum();

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void RmsNormBackward_matches_finite_differences(string kind)
    {
        foreach (var (rows, dim) in new[] { (1, 13), (5, 13), (3, 37) }) RmsNormBackwardMatchesFiniteDifferences(kind, rows, dim);
    }

    private void RmsNormBackwardMatchesFiniteDifferences(string kind, int rows, int dim)
    {
        var d = devices.Get(kind);
        var random = new Random(rows * 100 + dim);
        var x = RandomFloats(random, rows * dim, 1.5);
        var gamma = RandomFloats(random, dim, 0.5, 1);
        var c = RandomFloats(random, rows * dim);
        double[] x64 = ToDouble(x), g64 = ToDouble(gamma), c64 = ToDouble(c);
        double Loss() => Dot(c64, RmsNorm(x64, g64, rows, Eps));

        using var input = Tensor(d, x);
        using var weight = Weight(d, gamma, 1, dim);
        using var dOut = Tensor(d, c);
        using var dIn = d.Allocate(rows * dim);
        using var dGamma = d.Allocate(dim);
        d.RmsNormBackward(input, weight, dOut, dIn, dGamma, rows, Eps);
        Assert.InRange(RelativeError(Read(d, dIn), NumericGradient(Loss, x64)), 0, Bound);
        Assert.InRange(RelativeError(Read(d, dGamma), NumericGradient(Loss, g64)), 0, Bound);

        // accumulate adds onto dInput; a second call adds onto dWeight; a null dInput skips it.
        var first = Read(d, dIn);
        var firstGamma = Read(d, dGamma);
        d.RmsNormBackward(input, weight, dOut, dIn, dGamma, rows, Eps, accumulate: true);
        Assert.Equal(first.Select(v => v + v), Read(d, dIn));
        d.RmsNormBackward(input, weight, dOut, null, dGamma, rows, Eps);
        Assert.InRange(RelativeError(Read(d, dGamma), NumericGradient(Loss, g64).Select(v => 3 * v).ToArray()), 0, Bound);

        // rows split over two calls: identical bits.
        if (rows < 2) return;
        using var splitIn = d.Allocate(rows * dim);
        using var splitGamma = d.Allocate(dim);
        using var oneIn = d.Allocate(rows * dim);
        using var oneGamma = d.Allocate(dim);
        d.RmsNormBackward(input, weight, dOut, oneIn, oneGamma, rows, Eps);
        var a = rows / 2;
        d.RmsNormBackward(input.Slice(0, a * dim), weight, dOut.Slice(0, a * dim), splitIn.Slice(0, a * dim), splitGamma, a, Eps);
        d.RmsNormBackward(input.Slice(a * dim, (rows - a) * dim), weight, dOut.Slice(a * dim, (rows - a) * dim), splitIn.Slice(a * dim, (rows - a) * dim), splitGamma, rows - a, Eps);
        Assert.Equal(Read(d, oneIn), Read(d, splitIn));
        Assert.Equal(Read(d, oneGamma), Read(d, splitGamma));
        Assert.Equal(firstGamma, Read(d, oneGamma));
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void MatMulBackwardInput_matches_finite_differences(string kind)
    {
        foreach (var (rows, inDim, outDim, type) in new[] { (1, 7, 11, ElementType.F32), (4, 7, 11, ElementType.F32), (3, 19, 5, ElementType.F16), (3, 9, 23, ElementType.BF16) }) MatMulBackwardInputMatchesFiniteDifferences(kind, rows, inDim, outDim, type);
    }

    private void MatMulBackwardInputMatchesFiniteDifferences(string kind, int rows, int inDim, int outDim, ElementType type)
    {
        var d = devices.Get(kind);
        var random = new Random(rows + inDim * 7 + outDim * 31);
        var x = RandomFloats(random, rows * inDim);
        var w = RandomFloats(random, outDim * inDim);
        var c = RandomFloats(random, rows * outDim);
        // 16-bit weights: the reference uses exactly the values the device widens.
        byte[] bytes;
        switch (type)
        {
            case ElementType.F16:
                var halves = w.Select(v => (Half)v).ToArray();
                w = halves.Select(h => (float)h).ToArray();
                bytes = MemoryMarshal.AsBytes(halves.AsSpan()).ToArray();
                break;
            case ElementType.BF16:
                var bf = w.Select(v => (ushort)(BitConverter.SingleToInt32Bits(v) >>> 16)).ToArray();
                w = bf.Select(b => BitConverter.Int32BitsToSingle(b << 16)).ToArray();
                bytes = MemoryMarshal.AsBytes(bf.AsSpan()).ToArray();
                break;
            default:
                bytes = MemoryMarshal.AsBytes(w.AsSpan()).ToArray();
                break;
        }
        double[] x64 = ToDouble(x), w64 = ToDouble(w), c64 = ToDouble(c);
        double Loss() => Dot(c64, MatMul(x64, w64, rows, inDim, outDim));

        using var weight = d.UploadWeight(type, bytes, outDim, inDim);
        using var dOut = Tensor(d, c);
        using var dIn = Tensor(d, RandomFloats(random, rows * inDim)); // overwritten, not accumulated
        d.MatMulBackwardInput(dOut, weight, dIn, rows);
        var gradient = Read(d, dIn);
        Assert.InRange(RelativeError(gradient, NumericGradient(Loss, x64)), 0, Bound);

        d.MatMulBackwardInput(dOut, weight, dIn, rows, accumulate: true);
        Assert.InRange(RelativeError(Read(d, dIn), gradient.Select(v => 2.0 * v).ToArray()), 0, 1e-6);

        // One row alone gives the bits it gets in the block.
        using var single = d.Allocate(inDim);
        d.MatMulBackwardInput(dOut.Slice((rows - 1) * outDim, outDim), weight, single, 1);
        Assert.Equal(gradient.AsSpan((rows - 1) * inDim, inDim).ToArray(), Read(d, single));
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void MatMulWeightGradient_matches_finite_differences(string kind)
    {
        foreach (var (rows, inDim, outDim) in new[] { (1, 7, 11), (5, 13, 6) }) MatMulWeightGradientMatchesFiniteDifferences(kind, rows, inDim, outDim);
    }

    private void MatMulWeightGradientMatchesFiniteDifferences(string kind, int rows, int inDim, int outDim)
    {
        var d = devices.Get(kind);
        var random = new Random(rows * 3 + inDim + outDim * 17);
        var x = RandomFloats(random, rows * inDim);
        var w = RandomFloats(random, outDim * inDim);
        var c = RandomFloats(random, rows * outDim);
        double[] x64 = ToDouble(x), w64 = ToDouble(w), c64 = ToDouble(c);
        double Loss() => Dot(c64, MatMul(x64, w64, rows, inDim, outDim));

        using var input = Tensor(d, x);
        using var dOut = Tensor(d, c);
        using var dW = d.Allocate(outDim * inDim);
        d.MatMulWeightGradient(dOut, input, dW, rows, inDim, outDim);
        var gradient = Read(d, dW);
        Assert.InRange(RelativeError(gradient, NumericGradient(Loss, w64)), 0, Bound);

        // Accumulates; rows split across calls give the same bits as one call.
        using var split = d.Allocate(outDim * inDim);
        for (var r = 0; r < rows; r++)
            d.MatMulWeightGradient(dOut.Slice(r * outDim, outDim), input.Slice(r * inDim, inDim), split, 1, inDim, outDim);
        Assert.Equal(gradient, Read(d, split));
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void RopeBackward_matches_finite_differences(string kind)
    {
        foreach (var (rows, heads, headDim, startPos) in new[] { (1, 2, 6, 0), (4, 3, 6, 5), (3, 1, 10, 11) }) RopeBackwardMatchesFiniteDifferences(kind, rows, heads, headDim, startPos);
    }

    private void RopeBackwardMatchesFiniteDifferences(string kind, int rows, int heads, int headDim, int startPos)
    {
        var d = devices.Get(kind);
        const float theta = 10000f;
        var random = new Random(rows + heads * 5 + headDim * 7 + startPos);
        var x = RandomFloats(random, rows * heads * headDim);
        var c = RandomFloats(random, rows * heads * headDim);
        double[] x64 = ToDouble(x), c64 = ToDouble(c);
        double Loss() => Dot(c64, Rope(x64, rows, heads, headDim, startPos, theta));

        using var table = new RotaryTable(d, headDim, startPos + rows + 3, theta);
        using var grad = Tensor(d, c);
        d.RopeBackward(grad, rows, heads, startPos, table);
        Assert.InRange(RelativeError(Read(d, grad), NumericGradient(Loss, x64)), 0, Bound);

        // Backward undoes forward (a rotation's adjoint is its inverse).
        using var roundTrip = Tensor(d, x);
        d.Rope(roundTrip, rows, heads, startPos, table);
        d.RopeBackward(roundTrip, rows, heads, startPos, table);
        Assert.InRange(RelativeError(Read(d, roundTrip), x64), 0, 1e-6);
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void AttentionBackward_matches_finite_differences(string kind)
    {
        foreach (var (rows, startPos, heads, kvHeads, headDim) in new[] { (1, 0, 3, 3, 5), (4, 0, 2, 2, 6), (3, 2, 4, 2, 5), (2, 6, 3, 1, 7) }) AttentionBackwardMatchesFiniteDifferences(kind, rows, startPos, heads, kvHeads, headDim);
    }

    private void AttentionBackwardMatchesFiniteDifferences(string kind, int rows, int startPos, int heads, int kvHeads, int headDim)
    {
        var d = devices.Get(kind);
        var random = new Random(rows * 11 + startPos * 13 + heads * 17 + kvHeads * 19 + headDim);
        var positions = startPos + rows;
        var kvDim = kvHeads * headDim;
        var q = RandomFloats(random, rows * heads * headDim, 1.5);
        var k = RandomFloats(random, positions * kvDim, 1.5);
        var v = RandomFloats(random, positions * kvDim);
        var c = RandomFloats(random, rows * heads * headDim);
        double[] q64 = ToDouble(q), k64 = ToDouble(k), v64 = ToDouble(v), c64 = ToDouble(c);
        double Loss() => Dot(c64, Attention(q64, k64, v64, rows, startPos, heads, kvHeads, headDim));

        using var tq = Tensor(d, q);
        using var tk = Tensor(d, k);
        using var tv = Tensor(d, v);
        using var dOut = Tensor(d, c);
        using var dq = d.Allocate(q.Length);
        using var dk = d.Allocate(k.Length);
        using var dv = d.Allocate(v.Length);
        d.AttentionBackward(tq, tk, tv, dOut, dq, dk, dv, rows, startPos, heads, kvHeads, headDim);
        Assert.InRange(RelativeError(Read(d, dq), NumericGradient(Loss, q64)), 0, Bound);
        Assert.InRange(RelativeError(Read(d, dk), NumericGradient(Loss, k64)), 0, Bound);
        Assert.InRange(RelativeError(Read(d, dv), NumericGradient(Loss, v64)), 0, Bound);

        // Query rows one call at a time (positions advancing) give identical bits: dQ per row, and
        // dKeys/dValues accumulated in the same row order.
        using var dq1 = d.Allocate(q.Length);
        using var dk1 = d.Allocate(k.Length);
        using var dv1 = d.Allocate(v.Length);
        var width = heads * headDim;
        for (var r = 0; r < rows; r++)
            d.AttentionBackward(tq.Slice(r * width, width), tk, tv, dOut.Slice(r * width, width), dq1.Slice(r * width, width), dk1, dv1,
                1, startPos + r, heads, kvHeads, headDim);
        Assert.Equal(Read(d, dq), Read(d, dq1));
        Assert.Equal(Read(d, dk), Read(d, dk1));
        Assert.Equal(Read(d, dv), Read(d, dv1));
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void SoftCrossEntropy_gradient_and_statistics(string kind)
    {
        foreach (var (rows, cols) in new[] { (1, 17), (4, 23) }) SoftCrossEntropyGradientAndStatistics(kind, rows, cols);
    }

    private void SoftCrossEntropyGradientAndStatistics(string kind, int rows, int cols)
    {
        var d = devices.Get(kind);
        var random = new Random(rows * 7 + cols);
        const float scale = 0.37f;
        var z = RandomFloats(random, rows * cols, 3);
        var p = RandomDistributions(random, rows, cols);
        double[] z64 = ToDouble(z), p64 = ToDouble(p);
        double Loss() => scale * SoftCrossEntropy(z64, p64, rows, cols);

        using var logits = Tensor(d, z);
        using var targets = Tensor(d, p);
        using var stats = d.Allocate(rows * 3);
        d.SoftCrossEntropy(logits, targets, stats, rows, cols, scale);
        Assert.InRange(RelativeError(Read(d, logits), NumericGradient(Loss, z64)), 0, Bound);

        var s = Read(d, stats);
        for (var r = 0; r < rows; r++)
        {
            var zr = z64.AsSpan(r * cols, cols).ToArray();
            var pr = p64.AsSpan(r * cols, cols).ToArray();
            var max = zr.Max();
            var sum = zr.Sum(v => Math.Exp(v - max));
            var q = zr.Select(v => Math.Exp(v - max) / sum).ToArray();
            Assert.Equal(SoftCrossEntropy(zr, pr, 1, cols), s[r * 3], 4);
            Assert.Equal(q.Zip(pr, Math.Min).Sum(), s[r * 3 + 1], 5);
            Assert.Equal(Array.IndexOf(q, q.Max()) == Array.IndexOf(pr, pr.Max()) ? 1f : 0f, s[r * 3 + 2]);
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void AdamWMatchesPyTorchFormula(string kind)
    {
        var d = devices.Get(kind);
        var random = new Random(5);
        const int n = 37;
        var p = RandomFloats(random, n);
        var expected = ToDouble(p);
        double[] m = new double[n], v = new double[n];
        using var tp = Tensor(d, p);
        using var tm = d.Allocate(n);
        using var tv = d.Allocate(n);
        for (var t = 1; t <= 3; t++)
        {
            var g = RandomFloats(random, n, 0.1);
            var step = new AdamWStep(0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, t);
            using var tg = Tensor(d, g);
            d.AdamW(tp, tg, tm, tv, step);
            for (var i = 0; i < n; i++)
            {
                expected[i] *= 1 - 0.01 * 0.1;
                m[i] = 0.9 * m[i] + 0.1 * g[i];
                v[i] = 0.95 * v[i] + 0.05 * g[i] * (double)g[i];
                expected[i] -= 0.01 / (1 - Math.Pow(0.9, t)) * m[i] / (Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(0.95, t)) + 1e-8);
            }
        }
        Assert.InRange(RelativeError(Read(d, tp), expected), 0, 1e-5);
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void ClampFillAndUpdateWeight(string kind)
    {
        var d = devices.Get(kind);
        float[] values = [-2f, -0.5f, 0f, 0.25f, 0.5f, 0.75f, 3f];
        using var t = Tensor(d, values);
        d.ClampValues(t, 0.5f);
        Assert.Equal([-0.5f, -0.5f, 0f, 0.25f, 0.5f, 0.5f, 0.5f], Read(d, t));
        d.Fill(t.Slice(2, 3), 7f);
        Assert.Equal([-0.5f, -0.5f, 7f, 7f, 7f, 0.5f, 0.5f], Read(d, t));

        // A weight updated from a tensor is what the forward operations read next.
        using var weight = Weight(d, [1f, 0f, 0f, 1f, 1f, 1f], 3, 2);
        using var fresh = Tensor(d, [2f, 3f, 5f, 7f, 11f, 13f]);
        d.UpdateWeight(fresh, weight);
        using var x = Tensor(d, [1f, 10f]);
        using var y = d.Allocate(3);
        d.MatMul(x, weight, y, 1);
        Assert.Equal([32f, 75f, 141f], Read(d, y));
    }
}
