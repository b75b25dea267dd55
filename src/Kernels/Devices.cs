using Kangaroo.Native.Kernels.Reference;

namespace Kangaroo.Native.Kernels;

/// <summary>Creates compute devices by name: <c>auto</c>, <c>cpu</c>, <c>ilgpu-cpu</c>, <c>cuda</c>, <c>opencl</c>.</summary>
public static class Devices
{
    public static readonly IReadOnlyList<string> Names = ["auto", "cpu", "ilgpu-cpu", "cuda", "opencl"];

    public static ComputeDevice Create(string name) => name switch
    {
        "cpu" or "auto" => new ReferenceDevice(),
        _ => throw new ArgumentException($"unknown device '{name}' (expected one of: {string.Join(", ", Names)})"),
    };
}
