using System.Runtime.CompilerServices;

namespace Kangaroo.Native.Kernels;

/// <summary>A float buffer of a managed device (<c>cpu</c>, <c>reference</c>): a managed array, or a view
/// of one. Disposing the buffer (not a view) gives its bytes back to the device's count.</summary>
internal sealed class HostTensor : DeviceTensor
{
    private readonly float[] _array;
    private readonly int _offset;
    private readonly int _length;
    private bool _owns;

    private HostTensor(ComputeDevice device, float[] array, int offset, int length, bool owns)
    {
        (Device, _array, _offset, _length, _owns) = (device, array, offset, length, owns);
    }

    /// <summary>A zero-filled buffer of <paramref name="length"/> floats, counted in the device's bytes.</summary>
    public static HostTensor Allocate(ComputeDevice device, int length)
    {
        device.AllocatedBytes += 4L * length;
        return new HostTensor(device, new float[length], 0, length, owns: true);
    }

    public ComputeDevice Device { get; }

    public Span<float> Span => _array.AsSpan(_offset, _length);

    public override int Length => _length;

    public override DeviceTensor Slice(int offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan((long)offset + length, _length);
        return new HostTensor(Device, _array, _offset + offset, length, owns: false);
    }

    /// <summary><paramref name="tensor"/>, which must belong to <paramref name="device"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static HostTensor Of(DeviceTensor tensor, ComputeDevice device) =>
        tensor is HostTensor t && t.Device == device ? t : throw Foreign(tensor, device);

    private static ArgumentException Foreign(DeviceTensor tensor, ComputeDevice device) =>
        new($"tensor belongs to another device ({tensor.GetType().Name}), not to {device.Kind}");

    public override void Dispose()
    {
        if (!_owns) return;
        Device.AllocatedBytes -= 4L * _length;
        _owns = false;
    }
}
