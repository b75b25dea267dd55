using Kangaroo.Native.Kernels.Ilgpu;
using Kangaroo.Native.Kernels.Cpu;
using Kangaroo.Native.Kernels.Reference;

namespace Kangaroo.Native.Kernels;

/// <summary>An accelerator ILGPU can see. <paramref name="Usable"/> says whether <see cref="Devices.Create"/>
/// can open it; <paramref name="Note"/> gives details, or the reason it is rejected.</summary>
/// <param name="Kind">The device name to pass to <see cref="Devices.Create"/>: <c>ilgpu-cpu</c>, <c>cuda</c> or <c>opencl</c>.</param>
/// <param name="Name">The accelerator's own name (the GPU's model).</param>
/// <param name="MemoryBytes">Device memory, 0 for the CPU emulator (host memory).</param>
/// <param name="MaxThreadsPerGroup">The most threads a group of a kernel launch may have.</param>
/// <param name="Usable">Whether it can be opened.</param>
/// <param name="Note">Details, or why it is rejected.</param>
public sealed record AcceleratorDescription(string Kind, string Name, long MemoryBytes, int MaxThreadsPerGroup, bool Usable, string Note);

/// <summary>Creates compute devices by name: <c>auto</c>, <c>cpu</c>, <c>ilgpu-cpu</c>, <c>cuda</c>, <c>opencl</c>,
/// <c>reference</c>.</summary>
public static class Devices
{
    /// <summary>Every device name <see cref="Create"/> accepts.</summary>
    public static readonly IReadOnlyList<string> Names = ["auto", "cpu", "ilgpu-cpu", "cuda", "opencl", "reference"];

    /// <summary>
    /// <c>auto</c>: CUDA if present, else an OpenCL GPU ILGPU accepts, else the managed <c>cpu</c> device
    /// (an OpenCL CPU runtime is used only when asked for by name: it is slower than <c>cpu</c>).
    /// <c>cuda</c> and <c>opencl</c> throw <see cref="InvalidOperationException"/> naming what is missing.
    /// <c>ilgpu-cpu</c> is ILGPU's CPU emulator: correct but slow, for testing kernels. <c>reference</c> is the
    /// scalar oracle every kernel is tested against (<see cref="ReferenceDevice"/>): for tests and debugging.
    /// <paramref name="threads"/> is the <c>cpu</c> device's (<see cref="CpuDevice.Threads"/>; 0: one per core);
    /// a GPU runs its own threads.
    /// </summary>
    public static ComputeDevice Create(string name, int threads = 0) => name switch
    {
        "cpu" => new CpuDevice(threads),
        "auto" => (ComputeDevice?)IlgpuAccelerators.TryCreateCuda() ?? (ComputeDevice?)IlgpuAccelerators.TryCreateOpenCl(gpuOnly: true) ?? new CpuDevice(threads),
        "ilgpu-cpu" => IlgpuAccelerators.CreateEmulator(),
        "cuda" => IlgpuAccelerators.CreateCuda(),
        "opencl" => IlgpuAccelerators.CreateOpenCl(),
        "reference" => new ReferenceDevice(),
        _ => throw new ArgumentException($"unknown device '{name}' (expected one of: {string.Join(", ", Names)})", nameof(name)),
    };

    /// <summary>Every accelerator ILGPU can see (the CPU emulator, CUDA GPUs, OpenCL devices), including
    /// the ones it rejects and why. Never throws for a missing runtime: that device is simply absent.</summary>
    public static IReadOnlyList<AcceleratorDescription> Describe() => IlgpuAccelerators.Describe();
}
