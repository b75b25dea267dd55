using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine;

/// <summary>
/// The attention half of a transformer block over the rows of a pass, in place:
/// x += Wo · Attention(RoPE(Wqkv · RMSNorm(x) + bias)), each row writing its key and value into its
/// sequence's slot of one cache layer first. The model's blocks and the Kangaroo adapter both run it.
/// </summary>
internal sealed class AttentionBlock(DeviceWeight norm, StackedWeight qkv, DeviceTensor? bias, DeviceWeight output, int heads, int kvHeads, float eps)
{
    public void Run(DeviceTensor x, Batch batch, int first, int rows, KvCache cache, int layer, RotaryTable rotary, AttentionScratch s)
    {
        var d = s.Device;
        foreach (var (slot, start, count) in batch.Runs(first, rows)) cache.Write(slot, layer, start, count);
        var batchRows = batch.Rows.Slice(first, rows);
        d.RmsNorm(x, norm, s.Normed, rows, eps);
        qkv.MatMul(d, s.Normed, s.Qkv, rows);
        if (bias is not null) d.AddBias(s.Qkv, bias, rows);
        d.SplitQkv(s.Qkv, s.Query, cache.Keys(layer), cache.Values(layer), batchRows, heads, kvHeads, cache.Positions, rotary);
        d.Attention(s.Query, cache.Keys(layer), cache.Values(layer), s.Attention, batchRows, heads, kvHeads, rotary.HeadDim, cache.Positions);
        d.MatMul(s.Attention, output, x, rows, accumulate: true);
    }
}

/// <summary>Buffers of <see cref="AttentionBlock"/> for up to <paramref name="rows"/> rows.</summary>
internal sealed class AttentionScratch(ComputeDevice device, int rows, int dim, int queryDim, int kvDim) : IDisposable
{
    public ComputeDevice Device { get; } = device;
    public DeviceTensor Normed { get; } = device.Allocate(rows * dim);
    public DeviceTensor Qkv { get; } = device.Allocate(rows * (queryDim + 2 * kvDim));
    public DeviceTensor Query { get; } = device.Allocate(rows * queryDim);
    public DeviceTensor Attention { get; } = device.Allocate(rows * queryDim);

    public void Dispose()
    {
        foreach (var t in new[] { Normed, Qkv, Query, Attention }) t.Dispose();
    }
}
