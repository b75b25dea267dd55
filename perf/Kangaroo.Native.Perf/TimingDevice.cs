using System.Diagnostics;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Perf;

/// <summary>A <see cref="ComputeDevice"/> decorator that counts calls and time per operation. With
/// <c>synchronize</c> it waits for the device after every call, so asynchronous devices are charged
/// per operation (which also removes any overlap: use it to see where time goes, not for tokens/s).</summary>
public sealed class TimingDevice(ComputeDevice inner, bool synchronize) : ComputeDevice
{
    private readonly Dictionary<string, (int Calls, long Ticks)> _stats = [];

    public override string Kind => inner.Kind;
    public override string Name => inner.Name;

    public IReadOnlyDictionary<string, (int Calls, long Ticks)> Stats => _stats;

    public void Reset() => _stats.Clear();

    /// <summary>When false, calls are only forwarded (no clock reads, no synchronisation).</summary>
    public bool Enabled { get; set; } = true;

    private void Time(string op, Action action)
    {
        if (!Enabled)
        {
            action();
            return;
        }
        var start = Stopwatch.GetTimestamp();
        action();
        if (synchronize) inner.Synchronize();
        var ticks = Stopwatch.GetTimestamp() - start;
        _stats[op] = _stats.TryGetValue(op, out var s) ? (s.Calls + 1, s.Ticks + ticks) : (1, ticks);
    }

    public override DeviceTensor Allocate(int length) => inner.Allocate(length);
    public override DeviceWeight UploadWeight(WeightType type, ReadOnlySpan<byte> data, int rows, int cols) => inner.UploadWeight(type, data, rows, cols);
    public override void Upload(ReadOnlySpan<float> source, DeviceTensor destination) => inner.Upload(source, destination);

    public override void Download(DeviceTensor source, Span<float> destination)
    {
        var start = Stopwatch.GetTimestamp();
        inner.Download(source, destination);
        Record("download", start);
    }

    private void Record(string op, long start)
    {
        if (!Enabled) return;
        var ticks = Stopwatch.GetTimestamp() - start;
        _stats[op] = _stats.TryGetValue(op, out var s) ? (s.Calls + 1, s.Ticks + ticks) : (1, ticks);
    }

    public override void Copy(DeviceTensor source, DeviceTensor destination) => Time("copy", () => inner.Copy(source, destination));

    public override void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output)
    {
        var start = Stopwatch.GetTimestamp();
        inner.Embed(tokens, table, output);
        if (synchronize && Enabled) inner.Synchronize();
        Record("embed", start);
    }

    public override void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps) =>
        Time("rmsnorm", () => inner.RmsNorm(input, weight, output, rows, eps));

    public override void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false) =>
        Time(weight.Rows * (long)weight.Cols >= 1 << 20 ? "matmul (large)" : "matmul", () => inner.MatMul(input, weight, output, rows, accumulate));

    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table) =>
        Time("rope", () => inner.Rope(x, rows, heads, startPos, table));

    public override void Attention(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor output, int rows, int startPos, int heads, int kvHeads, int headDim) =>
        Time("attention", () => inner.Attention(q, keys, values, output, rows, startPos, heads, kvHeads, headDim));

    public override void SwiGlu(DeviceTensor gate, DeviceTensor up, int length) => Time("swiglu", () => inner.SwiGlu(gate, up, length));

    public override void Add(DeviceTensor target, DeviceTensor addend, int length) => Time("add", () => inner.Add(target, addend, length));

    public override void Softmax(DeviceTensor logits, int rows, int cols, float temperature) =>
        Time("softmax", () => inner.Softmax(logits, rows, cols, temperature));

    public override void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result)
    {
        var start = Stopwatch.GetTimestamp();
        inner.ArgMax(logits, rows, cols, result);
        Record("argmax", start);
    }

    public override void Synchronize() => inner.Synchronize();

    public override void Dispose() => inner.Dispose();
}
