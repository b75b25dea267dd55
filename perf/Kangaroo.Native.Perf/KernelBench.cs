using System.Runtime.InteropServices;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Perf;

/// <summary>
/// Kernel benchmarks in the style of llm.c's dev/cuda: every operation at realistic shapes, on each
/// device side by side in one process, checked against the first device's result (<c>cpu</c>) and timed
/// (median of batches, synchronised at the end of each batch), with bytes moved and flops.
/// </summary>
public static class KernelBench
{
    /// <summary>One benchmark: its label, the bytes a perfect kernel moves and the flops it does, and
    /// a setup that returns the call to time, a way to read the result, and what to dispose.</summary>
    public sealed record Case(string Op, string Shape, string Type, int Rows, long Bytes, long Flops, Func<ComputeDevice, Prepared> Setup);

    public sealed record Prepared(Action Run, Func<float[]> Result, IDisposable[] Resources);

    public sealed record Row(Case Case, string Device, double Seconds, double GBps, double GFlops, double VsCpu, double MaxError);

    private static readonly (int Out, int In)[] LlamaShapes = [(2048, 2048), (5632, 2048), (2048, 5632), (32000, 2048)];
    private static readonly (int Out, int In)[] TinyShapes = [(64, 64), (172, 64), (512, 64)];

    /// <summary>stories110M's q|k|v, gate|up, down and LM head: verification blocks of 1-4 rows on a memory-bound shape.</summary>
    private static readonly (int Out, int In)[] VerifyShapes = [(2304, 768), (4096, 768), (768, 2048), (32000, 768)];

    public static List<Case> Cases(bool quick)
    {
        var cases = new List<Case> { Copy(quick ? 16 << 20 : 64 << 20) };
        foreach (var (o, i) in TinyShapes) cases.Add(MatMul(o, i, ElementType.F32, 1));
        cases.Add(MatMul(512, 64, ElementType.F32, 4));
        foreach (var type in new[] { ElementType.F32, ElementType.F16, ElementType.BF16, ElementType.Q8_0, ElementType.Q4_0 })
            foreach (var (o, i) in quick ? LlamaShapes[..2] : LlamaShapes)
                cases.Add(MatMul(o, i, type, 1));
        foreach (var rows in new[] { 8, 64 })
            foreach (var type in new[] { ElementType.F16, ElementType.Q8_0, ElementType.Q4_0 })
                foreach (var (o, i) in quick ? LlamaShapes[..1] : LlamaShapes[..3])
                    cases.Add(MatMul(o, i, type, rows));
        if (!quick) cases.Add(MatMul(2048, 2048, ElementType.F32, 8));
        foreach (var type in new[] { ElementType.F16, ElementType.BF16 }) // verification blocks on 16-bit weights
            foreach (var rows in new[] { 2, 4 })
                foreach (var (o, i) in quick ? LlamaShapes[..1] : LlamaShapes[..3])
                    cases.Add(MatMul(o, i, type, rows));
        foreach (var rows in new[] { 1, 2, 4 })
            foreach (var (o, i) in quick ? VerifyShapes[..1] : VerifyShapes)
                cases.Add(MatMul(o, i, ElementType.F32, rows));
        foreach (var context in new[] { 128, 1024 })
            foreach (var rows in new[] { 1, 8 })
                cases.Add(Attention(context, rows, 32, 4, 64));
        cases.Add(Attention(128, 1, 8, 4, 8)); // stories260K
        cases.Add(RmsNorm(2048, 1));
        cases.Add(RmsNorm(2048, 64));
        cases.Add(RmsNorm(64, 1));
        cases.Add(SplitQkv(1, 32, 4, 64));
        cases.Add(SwiGlu(5632));
        cases.Add(Add(2048));
        cases.Add(Softmax(1, 32000));
        cases.Add(ArgMax(1, 32000));
        cases.Add(ArgMax(1, 512));
        cases.Add(ArgMax(8, 32000));
        return cases;
    }

    public static List<Row> Run(IReadOnlyList<string> deviceNames, IEnumerable<Case> cases, Action<string> log)
    {
        var rows = new List<Row>();
        var devices = new List<ComputeDevice>();
        foreach (var name in deviceNames)
        {
            try
            {
                devices.Add(Devices.Create(name));
            }
            catch (Exception e) when (e is InvalidOperationException or ArgumentException or DllNotFoundException or TypeInitializationException)
            {
                log($"device {name}: not available ({e.Message})");
            }
        }
        try
        {
            foreach (var c in cases)
            {
                float[]? reference = null;
                double cpuSeconds = double.NaN;
                foreach (var device in devices)
                {
                    var prepared = c.Setup(device);
                    try
                    {
                        var seconds = Measure.Median(prepared.Run, device.Synchronize);
                        var result = prepared.Result();
                        reference ??= result;
                        if (device.Kind == "cpu") cpuSeconds = seconds;
                        var row = new Row(c, device.Kind, seconds, c.Bytes / seconds / 1e9, c.Flops / seconds / 1e9, seconds / cpuSeconds, MaxError(reference, result));
                        rows.Add(row);
                        log(Format(row));
                    }
                    finally
                    {
                        foreach (var r in prepared.Resources) r.Dispose();
                    }
                }
            }
        }
        finally
        {
            foreach (var d in devices) d.Dispose();
        }
        return rows;
    }

    public const string Header = "| op | shape | weights | rows | device | time | GB/s | GFLOP/s | time vs cpu | max rel. error |\n|---|---|---|---|---|---|---|---|---|---|";

    public static string Format(Row r) =>
        $"| {r.Case.Op} | {r.Case.Shape} | {r.Case.Type} | {r.Case.Rows} | {r.Device} | {Measure.Time(r.Seconds)} | {r.GBps:F2} | {r.GFlops:F2} | {(double.IsFinite(r.VsCpu) ? $"{r.VsCpu:F2}x" : "-")} | {r.MaxError:E1} |";

    /// <summary>Largest absolute difference relative to the largest reference magnitude.</summary>
    private static double MaxError(float[] reference, float[] result)
    {
        if (ReferenceEquals(reference, result)) return 0;
        var scale = 1e-30;
        var error = 0.0;
        for (var i = 0; i < reference.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs(reference[i]));
            error = Math.Max(error, Math.Abs(reference[i] - result[i]));
            if (float.IsNaN(result[i]) != float.IsNaN(reference[i])) return double.PositiveInfinity;
        }
        return error / scale;
    }

    private static float[] Random(int n, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[n];
        for (var i = 0; i < n; i++) values[i] = (float)(random.NextDouble() * 2 - 1) * scale;
        return values;
    }

    /// <summary>Values as weight bytes; quantized types with llama.cpp's rounding (whole blocks of 32).</summary>
    public static byte[] Encode(float[] values, ElementType type) => CheckpointConverter.Encode(TensorData.FromFloats(values, values.Length), type);

    private static DeviceTensor Tensor(ComputeDevice d, float[] values)
    {
        var t = d.Allocate(values.Length);
        d.Upload(values, t);
        return t;
    }

    private static Func<float[]> Reader(ComputeDevice d, DeviceTensor t, int length) => () =>
    {
        var result = new float[length];
        d.Download(t, result);
        return result;
    };

    /// <summary>A device-to-device copy of a large buffer: the bandwidth the other kernels are measured against.</summary>
    public static Case Copy(int length) =>
        new("copy", $"{length * 4L >> 20} MiB", "-", 1, 8L * length, 0, d =>
        {
            var (a, b) = (d.Allocate(length), d.Allocate(length));
            return new Prepared(() => d.Copy(a, b), () => [], [a, b]);
        });

    public static Case MatMul(int outDim, int inDim, ElementType type, int rows)
    {
        var weightValues = Random(outDim * inDim, 1, 1f / MathF.Sqrt(inDim));
        var weightBytes = Encode(weightValues, type);
        var input = Random(rows * inDim, 2);
        return new Case("matmul", $"{outDim}x{inDim}", type.ToString().ToLowerInvariant(), rows,
            outDim * type.RowBytes(inDim) + 4L * rows * (inDim + outDim), 2L * rows * inDim * outDim, d =>
            {
                var w = d.UploadWeight(type, weightBytes, outDim, inDim);
                var x = Tensor(d, input);
                var y = d.Allocate(rows * outDim);
                return new Prepared(() => d.MatMul(x, w, y, rows), Reader(d, y, rows * outDim), [w, x, y]);
            });
    }

    public static Case Attention(int context, int rows, int heads, int kvHeads, int headDim)
    {
        var dim = heads * headDim;
        var kvDim = kvHeads * headDim;
        var positions = context + rows;
        var q = Random(rows * dim, 3);
        var k = Random(positions * kvDim, 4);
        var v = Random(positions * kvDim, 5);
        return new Case("attention", $"ctx {context}, {heads}/{kvHeads} heads x {headDim}", "-", rows,
            8L * positions * kvDim + 8L * rows * dim, 4L * rows * heads * positions * headDim, d =>
            {
                var (tq, tk, tv, o) = (Tensor(d, q), Tensor(d, k), Tensor(d, v), d.Allocate(rows * dim));
                var batch = BatchRows.Sequence(0, context, rows);
                return new Prepared(() => d.Attention(tq, tk, tv, o, batch, heads, kvHeads, headDim, positions), Reader(d, o, rows * dim), [tq, tk, tv, o]);
            });
    }

    public static Case RmsNorm(int dim, int rows)
    {
        var x = Random(rows * dim, 6);
        var gain = Encode(Random(dim, 7), ElementType.F32);
        return new Case("rmsnorm", $"{dim}", "f32", rows, 8L * rows * dim + 4L * dim, 4L * rows * dim, d =>
        {
            var (tx, w, y) = (Tensor(d, x), d.UploadWeight(ElementType.F32, gain, 1, dim), d.Allocate(rows * dim));
            return new Prepared(() => d.RmsNorm(tx, w, y, rows, 1e-5f), Reader(d, y, rows * dim), [tx, w, y]);
        });
    }

    public static Case SplitQkv(int rows, int heads, int kvHeads, int headDim)
    {
        var (dim, kvDim) = (heads * headDim, kvHeads * headDim);
        var x = Random(rows * (dim + 2 * kvDim), 8);
        return new Case("split qkv", $"{heads}/{kvHeads} heads x {headDim}", "-", rows, 8L * x.Length + 4L * rows * headDim, 3L * rows * (dim + kvDim), d =>
        {
            const int start = 1000; // the rows' positions in a one-sequence cache of start + rows positions
            var (qkv, q, k, v) = (Tensor(d, x), d.Allocate(rows * dim), d.Allocate((start + rows) * kvDim), d.Allocate((start + rows) * kvDim));
            var table = new RotaryTable(d, headDim, 2048, 10000f);
            var batch = BatchRows.Sequence(0, start, rows);
            var (readQ, readK, readV) = (Reader(d, q, rows * dim), Reader(d, k.Slice(start * kvDim, rows * kvDim), rows * kvDim), Reader(d, v.Slice(start * kvDim, rows * kvDim), rows * kvDim));
            return new Prepared(() => d.SplitQkv(qkv, q, k, v, batch, heads, kvHeads, start + rows, table), () => [.. readQ(), .. readK(), .. readV()], [qkv, q, k, v, table]);
        });
    }

    public static Case SwiGlu(int hiddenDim)
    {
        var gateUp = Random(2 * hiddenDim, 9);
        return new Case("swiglu", $"{hiddenDim}", "-", 1, 12L * hiddenDim, 5L * hiddenDim, d =>
        {
            var (tgu, y) = (Tensor(d, gateUp), d.Allocate(hiddenDim));
            return new Prepared(() => d.SwiGlu(tgu, y, 1, hiddenDim), Reader(d, y, hiddenDim), [tgu, y]);
        });
    }

    public static Case Add(int length)
    {
        var a = Random(length, 11);
        var b = Random(length, 12);
        return new Case("add", $"{length}", "-", 1, 12L * length, length, d =>
        {
            var (ta, tb) = (Tensor(d, a), Tensor(d, b));
            return new Prepared(() => d.Add(ta, tb, length), Reader(d, tb, length), [ta, tb]);
        });
    }

    public static Case Softmax(int rows, int cols)
    {
        var x = Random(rows * cols, 13, 10f);
        return new Case("softmax", $"{cols}", "-", rows, 8L * rows * cols, 4L * rows * cols, d =>
        {
            var t = Tensor(d, x);
            return new Prepared(() => { d.Upload(x, t); d.Softmax(t, rows, cols, 1f); }, Reader(d, t, x.Length), [t]);
        });
    }

    public static Case ArgMax(int rows, int cols)
    {
        var x = Random(rows * cols, 14, 10f);
        return new Case("argmax", $"{cols}", "-", rows, 4L * rows * cols, 3L * rows * cols, d =>
        {
            var t = Tensor(d, x);
            var top = new TopToken[rows];
            return new Prepared(() => d.ArgMax(t, rows, cols, top),
                () => top.SelectMany(p => new[] { p.Id, p.Probability }).ToArray(), [t]);
        });
    }
}
