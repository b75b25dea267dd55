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

    public override void SplitQkv(DeviceTensor qkv, DeviceTensor query, DeviceTensor keys, DeviceTensor values, int rows, int heads, int kvHeads, int startPos, RotaryTable table) =>
        Time("split qkv", () => inner.SplitQkv(qkv, query, keys, values, rows, heads, kvHeads, startPos, table));

    public override void Attention(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor output, int rows, int startPos, int heads, int kvHeads, int headDim) =>
        Time("attention", () => inner.Attention(q, keys, values, output, rows, startPos, heads, kvHeads, headDim));

    public override void SwiGlu(DeviceTensor gateUp, DeviceTensor output, int rows, int hiddenDim) =>
        Time("swiglu", () => inner.SwiGlu(gateUp, output, rows, hiddenDim));

    public override void Add(DeviceTensor target, DeviceTensor addend, int length) => Time("add", () => inner.Add(target, addend, length));

    public override void Fill(DeviceTensor tensor, float value) => Time("fill", () => inner.Fill(tensor, value));

    public override void UpdateWeight(DeviceTensor source, DeviceWeight destination) => Time("update weight", () => inner.UpdateWeight(source, destination));

    public override void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput, DeviceTensor dWeight, int rows, float eps, bool accumulate = false) =>
        Time("rmsnorm backward", () => inner.RmsNormBackward(input, weight, dOutput, dInput, dWeight, rows, eps, accumulate));

    public override void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false) =>
        Time("matmul backward input", () => inner.MatMulBackwardInput(dOutput, weight, dInput, rows, accumulate));

    public override void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim) =>
        Time("matmul weight gradient", () => inner.MatMulWeightGradient(dOutput, input, dWeight, rows, inDim, outDim));

    public override void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table) =>
        Time("rope backward", () => inner.RopeBackward(grad, rows, heads, startPos, table));

    public override void AttentionBackward(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor dOutput,
        DeviceTensor dQ, DeviceTensor dKeys, DeviceTensor dValues, int rows, int startPos, int heads, int kvHeads, int headDim) =>
        Time("attention backward", () => inner.AttentionBackward(q, keys, values, dOutput, dQ, dKeys, dValues, rows, startPos, heads, kvHeads, headDim));

    public override void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale) =>
        Time("soft cross-entropy", () => inner.SoftCrossEntropy(logits, targets, rowStats, rows, cols, gradScale));

    public override void ClampValues(DeviceTensor tensor, float limit) => Time("clamp", () => inner.ClampValues(tensor, limit));

    public override void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step) =>
        Time("adamw", () => inner.AdamW(parameters, gradients, moment1, moment2, step));

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
