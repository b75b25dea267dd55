using System.Runtime.CompilerServices;

namespace Kangaroo.Native.Kernels;

/// <summary>A device whose memory is the process's (<c>cpu</c>, <c>reference</c>): buffers are managed
/// float arrays (<see cref="HostTensor"/>), and every call completes before it returns.</summary>
public abstract class HostDevice : ComputeDevice
{
    /// <inheritdoc/>
    public override long MemoryBytes => GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <inheritdoc/>
    public override DeviceTensor Allocate(int length) => HostTensor.Allocate(this, length);

    /// <inheritdoc/>
    public override void Upload(ReadOnlySpan<float> source, DeviceTensor destination) => source.CopyTo(Span(destination));

    /// <inheritdoc/>
    public override void Download(DeviceTensor source, Span<float> destination) => Span(source)[..destination.Length].CopyTo(destination);

    /// <inheritdoc/>
    public override void Copy(DeviceTensor source, DeviceTensor destination) => Span(source).CopyTo(Span(destination));

    /// <inheritdoc/>
    public override void Fill(DeviceTensor tensor, float value) => Span(tensor).Fill(value);

    /// <inheritdoc/>
    public override void Synchronize()
    {
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
    }

    /// <inheritdoc/>
    public sealed override void SplitQkv(DeviceTensor qkv, DeviceTensor query, DeviceTensor keyCache, DeviceTensor valueCache,
        BatchRows rows, int heads, int kvHeads, int slotPositions, RotaryTable table)
    {
        var (dim, kvDim) = (heads * table.HeadDim, kvHeads * table.HeadDim);
        CheckRows(rows, slotPositions, keyCache.Length, kvDim, table);
        var source = Span(qkv);
        var q = Span(query);
        for (var r = 0; r < rows.Count; r++)
        {
            var row = source.Slice(r * (dim + 2 * kvDim), dim + 2 * kvDim);
            var at = (int)(((long)rows.Slot(r) * slotPositions + rows.Position(r)) * kvDim);
            var qr = q.Slice(r * dim, dim);
            var kr = Span(keyCache).Slice(at, kvDim);
            row[..dim].CopyTo(qr);
            row.Slice(dim, kvDim).CopyTo(kr);
            row.Slice(dim + kvDim, kvDim).CopyTo(Span(valueCache).Slice(at, kvDim));
            RotateRow(qr, rows.Position(r), table);
            RotateRow(kr, rows.Position(r), table);
        }
    }

    /// <summary>Rotates every head of one row at <paramref name="position"/>, as <see cref="ComputeDevice.Rope"/>
    /// rotates a row (<see cref="SplitQkv"/>'s q and k).</summary>
    protected abstract void RotateRow(Span<float> row, int position, RotaryTable table);

    /// <summary>The values of a tensor of this device.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected Span<float> Span(DeviceTensor tensor) => HostTensor.Of(tensor, this).Span;
}
