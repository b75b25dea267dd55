using System.Numerics.Tensors;

namespace Kangaroo.Native.Perf;

/// <summary>This machine's memory bandwidth from managed code: the floor every bandwidth-bound kernel
/// is compared against. Arrays of 256 MiB (far above the last-level cache).</summary>
public static class MemoryBandwidth
{
    public sealed record Result(string What, int Threads, double GBps);

    public static List<Result> Run(int megabytes = 256)
    {
        var n = megabytes * (1 << 20) / 4;
        var a = new float[n];
        var b = new float[n];
        new Random(1).NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(a.AsSpan()));
        TensorPrimitives.Abs(a, a); // no NaN-driven slow paths
        var threads = Environment.ProcessorCount;
        var sink = 0f;
        var results = new List<Result>
        {
            new("copy (read + write)", 1, 2.0 * n * 4 / Measure.Median(() => a.AsSpan().CopyTo(b), budgetSeconds: 1.5) / 1e9),
            new("read (sum)", 1, 1.0 * n * 4 / Measure.Median(() => sink += TensorPrimitives.Sum(a), budgetSeconds: 1.5) / 1e9),
            new("copy (read + write)", threads, 2.0 * n * 4 / Measure.Median(() => Parallel.For(0, threads, t =>
            {
                var (start, length) = Part(n, threads, t);
                a.AsSpan(start, length).CopyTo(b.AsSpan(start, length));
            }), budgetSeconds: 1.5) / 1e9),
            new("read (sum)", threads, 1.0 * n * 4 / Measure.Median(() => Parallel.For(0, threads, t =>
            {
                var (start, length) = Part(n, threads, t);
                _ = TensorPrimitives.Sum(a.AsSpan(start, length));
            }), budgetSeconds: 1.5) / 1e9),
        };
        GC.KeepAlive(sink);
        return results;
    }

    private static (int Start, int Length) Part(int n, int parts, int index)
    {
        var per = (n + parts - 1) / parts;
        var start = Math.Min(n, index * per);
        return (start, Math.Min(per, n - start));
    }
}
