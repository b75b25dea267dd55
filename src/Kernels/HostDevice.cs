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

    /// <summary>The values of a tensor of this device.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    protected Span<float> Span(DeviceTensor tensor) => HostTensor.Of(tensor, this).Span;
}
