using System.Diagnostics;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Perf;

/// <summary>A <see cref="ComputeDevice"/> decorator that counts calls and time per operation. With
/// <c>synchronize</c> it waits for the device after every call, so asynchronous devices are charged
/// per operation (which also removes any overlap: use it to see where time goes, not for tokens/s).</summary>
public sealed class TimingDevice(ComputeDevice inner, bool synchronize) : ComputeDevice
{
    private readonly Dictionary<string, (int Calls, long Ticks)> _stats = [];

    public override string Kind => inner.Kind;
    public override string Name => inner.Name;
    public override long MemoryBytes => inner.MemoryBytes;

    public IReadOnlyDictionary<string, (int Calls, long Ticks)> Stats => _stats;

    public void Reset() => _stats.Clear();

    /// <summary>When false, calls are only forwarded (no clock reads, no synchronisation).</summary>
    public bool Enabled { get; set; } = true;

    // Begin/end pairs rather than a timed delegate: a closure per call would show up in the managed
    // allocation this tool reports.
    private long Start() => Enabled ? Stopwatch.GetTimestamp() : 0;

    private void Stop(string op, long start)
    {
        if (!Enabled) return;
        if (synchronize) inner.Synchronize();
        Record(op, start);
    }

    public override DeviceTensor Allocate(int length) => inner.Allocate(length);
    public override DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<byte> data, int rows, int cols) => inner.UploadWeight(type, data, rows, cols);
    public override void Upload(ReadOnlySpan<float> source, DeviceTensor destination) => inner.Upload(source, destination);

    public override void Download(DeviceTensor source, Span<float> destination)
    {
        var start = Start();
        inner.Download(source, destination);
        Record("download", start); // synchronises by itself
    }

    private void Record(string op, long start)
    {
        if (!Enabled) return;
        var ticks = Stopwatch.GetTimestamp() - start;
        _stats[op] = _stats.TryGetValue(op, out var s) ? (s.Calls + 1, s.Ticks + ticks) : (1, ticks);
    }

    public override void Copy(DeviceTensor source, DeviceTensor destination)
    {
        var start = Start();
        inner.Copy(source, destination);
        Stop("copy", start);
    }

    public override void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output)
    {
        var start = Start();
        inner.Embed(tokens, table, output);
        Stop("embed", start);
    }

    public override void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps)
    {
        var start = Start();
        inner.RmsNorm(input, weight, output, rows, eps);
        Stop("rmsnorm", start);
    }

    public override void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false, int outputStride = 0)
    {
        var start = Start();
        inner.MatMul(input, weight, output, rows, accumulate, outputStride);
        Stop(weight.Rows * (long)weight.Cols >= 1 << 20 ? "matmul (large)" : "matmul", start);
    }

    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table)
    {
        var start = Start();
        inner.Rope(x, rows, heads, startPos, table);
        Stop("rope", start);
    }

    public override void SplitQkv(DeviceTensor qkv, DeviceTensor query, DeviceTensor keyCache, DeviceTensor valueCache, BatchRows rows, int heads, int kvHeads, int slotPositions, RotaryTable table)
    {
        var start = Start();
        inner.SplitQkv(qkv, query, keyCache, valueCache, rows, heads, kvHeads, slotPositions, table);
        Stop("split qkv", start);
    }

    public override void Attention(DeviceTensor q, DeviceTensor keyCache, DeviceTensor valueCache, DeviceTensor output, BatchRows rows, int heads, int kvHeads, int headDim, int slotPositions)
    {
        var start = Start();
        inner.Attention(q, keyCache, valueCache, output, rows, heads, kvHeads, headDim, slotPositions);
        Stop("attention", start);
    }

    public override void SwiGlu(DeviceTensor gateUp, DeviceTensor output, int rows, int hiddenDim)
    {
        var start = Start();
        inner.SwiGlu(gateUp, output, rows, hiddenDim);
        Stop("swiglu", start);
    }

    public override void Add(DeviceTensor target, DeviceTensor addend, int length)
    {
        var start = Start();
        inner.Add(target, addend, length);
        Stop("add", start);
    }

    public override void AddBias(DeviceTensor x, DeviceTensor bias, int rows)
    {
        var start = Start();
        inner.AddBias(x, bias, rows);
        Stop("add bias", start);
    }

    public override void Fill(DeviceTensor tensor, float value)
    {
        var start = Start();
        inner.Fill(tensor, value);
        Stop("fill", start);
    }

    public override void UpdateWeight(DeviceTensor source, DeviceWeight destination)
    {
        var start = Start();
        inner.UpdateWeight(source, destination);
        Stop("update weight", start);
    }

    public override void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput, DeviceTensor dWeight, int rows, float eps, bool accumulate = false)
    {
        var start = Start();
        inner.RmsNormBackward(input, weight, dOutput, dInput, dWeight, rows, eps, accumulate);
        Stop("rmsnorm backward", start);
    }

    public override void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false)
    {
        var start = Start();
        inner.MatMulBackwardInput(dOutput, weight, dInput, rows, accumulate);
        Stop("matmul backward input", start);
    }

    public override void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim)
    {
        var start = Start();
        inner.MatMulWeightGradient(dOutput, input, dWeight, rows, inDim, outDim);
        Stop("matmul weight gradient", start);
    }

    public override void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table)
    {
        var start = Start();
        inner.RopeBackward(grad, rows, heads, startPos, table);
        Stop("rope backward", start);
    }

    public override void AttentionBackward(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor dOutput,
        DeviceTensor dQ, DeviceTensor dKeys, DeviceTensor dValues, int rows, int startPos, int heads, int kvHeads, int headDim)
    {
        var start = Start();
        inner.AttentionBackward(q, keys, values, dOutput, dQ, dKeys, dValues, rows, startPos, heads, kvHeads, headDim);
        Stop("attention backward", start);
    }

    public override void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale)
    {
        var start = Start();
        inner.SoftCrossEntropy(logits, targets, rowStats, rows, cols, gradScale);
        Stop("soft cross-entropy", start);
    }

    public override void ClampValues(DeviceTensor tensor, float limit)
    {
        var start = Start();
        inner.ClampValues(tensor, limit);
        Stop("clamp", start);
    }

    public override void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step)
    {
        var start = Start();
        inner.AdamW(parameters, gradients, moment1, moment2, step);
        Stop("adamw", start);
    }

    public override void Softmax(DeviceTensor logits, int rows, int cols, float temperature)
    {
        var start = Start();
        inner.Softmax(logits, rows, cols, temperature);
        Stop("softmax", start);
    }

    public override void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result)
    {
        var start = Start();
        inner.ArgMax(logits, rows, cols, result);
        Record("argmax", start); // synchronises by itself
    }

    public override void Synchronize() => inner.Synchronize();

    public override void Dispose() => inner.Dispose();
}
