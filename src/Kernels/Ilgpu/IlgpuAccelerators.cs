using ILGPU;
using ILGPU.Backends.OpenCL;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using ILGPU.Runtime.OpenCL;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Finds ILGPU accelerators, explains the ones it cannot use, and opens <see cref="IlgpuDevice"/>s.</summary>
internal static class IlgpuAccelerators
{
    /// <summary>The CPU emulator's shape: groups of 2 threads (one warp of 2), 2 multiprocessors.
    /// Every emulated thread is an OS thread and every barrier a cross-thread rendezvous, so the
    /// smallest group that still splits loops and reductions across threads keeps the emulator usable
    /// (perf/README.md has the measurements).
    /// Wide groups and multi-level reductions are exercised on OpenCL (the tests' <c>opencl-wide</c> tier, groups of 256).</summary>
    private static CPUDevice EmulatorShape => new(numThreadsPerWarp: 2, numWarpsPerMultiprocessor: 1, numMultiprocessors: 2);

    private const string OpenClHint = "install PoCL 4+ (scripts/install-opencl.sh)";

    public static IlgpuDevice CreateEmulator()
    {
        var context = Context.Create(builder => builder.CPU(EmulatorShape).EnableAlgorithms());
        return Open("ilgpu-cpu", context, context.GetCPUDevice(0));
    }

    public static IlgpuDevice? TryCreateCuda()
    {
        var context = Context.Create(builder => builder.Cuda().EnableAlgorithms());
        var devices = context.Devices.OfType<CudaDevice>().ToList();
        if (devices.Count == 0)
        {
            context.Dispose();
            return null;
        }
        // The GPU with the most memory: on a mixed machine that is the one meant for inference.
        return Open("cuda", context, devices.OrderByDescending(d => d.MemorySize).First());
    }

    /// <summary>The best OpenCL device ILGPU accepts; with <paramref name="gpuOnly"/>, only a GPU (a CPU
    /// runtime such as PoCL is slower than the managed <c>cpu</c> device, so <c>auto</c> skips it).
    /// <paramref name="groupWidth"/> overrides the group widths (tests: <see cref="GroupWidths.For"/>).</summary>
    public static IlgpuDevice? TryCreateOpenCl(bool gpuOnly = false, int? groupWidth = null)
    {
        var context = Context.Create(builder => builder.OpenCL().EnableAlgorithms());
        var devices = context.Devices.OfType<CLDevice>().Where(d => !gpuOnly || d.DeviceType == CLDeviceType.CL_DEVICE_TYPE_GPU).ToList();
        if (devices.Count == 0)
        {
            context.Dispose();
            return null;
        }
        // Prefer a GPU over a CPU runtime (PoCL), then the larger memory.
        var device = devices
            .OrderByDescending(d => d.DeviceType == CLDeviceType.CL_DEVICE_TYPE_GPU)
            .ThenByDescending(d => d.MemorySize)
            .First();
        return Open("opencl", context, device, groupWidth);
    }

    public static IlgpuDevice CreateCuda() =>
        TryCreateCuda() ?? throw new InvalidOperationException(
            "no CUDA device: ILGPU found no NVIDIA GPU with a usable driver (libcuda) and a supported PTX instruction set" + Found("cuda"));

    public static IlgpuDevice CreateOpenCl(int? groupWidth = null) =>
        TryCreateOpenCl(groupWidth: groupWidth) ?? throw new InvalidOperationException(
            $"no OpenCL device with generic address space support (OpenCL C 2.0+); {OpenClHint}" + Found("opencl"));

    /// <summary>Every accelerator ILGPU can see, including the CUDA and OpenCL devices it would reject, and why.</summary>
    public static IReadOnlyList<AcceleratorDescription> Describe()
    {
        var result = new List<AcceleratorDescription>();
        using var context = Context.Create(builder => builder.CPU(EmulatorShape).Cuda(_ => true).OpenCL(_ => true));
        foreach (var device in context)
        {
            switch (device)
            {
                case CPUDevice cpu:
                    result.Add(new AcceleratorDescription("ilgpu-cpu", "ILGPU CPU emulator", 0, cpu.MaxNumThreadsPerGroup, true,
                        "one OS thread per GPU thread: for testing kernels, not for inference"));
                    break;
                case CudaDevice cuda:
                    var cudaProblem = !cuda.Architecture.HasValue ? "compute capability unknown to ILGPU 1.5.3"
                        : !cuda.InstructionSet.HasValue || !PTXCodeGenerator.SupportedInstructionSets.Contains(cuda.InstructionSet.Value)
                            ? $"driver {cuda.DriverVersion} offers no PTX instruction set ILGPU 1.5.3 supports"
                            : null;
                    result.Add(new AcceleratorDescription("cuda", cuda.Name, cuda.MemorySize, cuda.MaxNumThreadsPerGroup, cudaProblem is null,
                        cudaProblem ?? $"{cuda.Architecture}, PTX {cuda.InstructionSet}, driver {cuda.DriverVersion}"));
                    break;
                case CLDevice cl:
                    var clProblem = cl.CLStdVersion < CLBackend.MinimumVersion
                        ? $"OpenCL C {cl.CLStdVersion} < {CLBackend.MinimumVersion}; {OpenClHint}"
                        : !cl.Capabilities.GenericAddressSpace
                            ? $"no generic address space support (ILGPU's OpenCL C uses __generic pointers); {OpenClHint}"
                            : null;
                    result.Add(new AcceleratorDescription("opencl", $"{cl.Name} ({cl.PlatformName})", cl.MemorySize, cl.MaxNumThreadsPerGroup,
                        clProblem is null, clProblem ?? $"{cl.DeviceType}, OpenCL C {cl.CLStdVersion}, {cl.DeviceVersion}"));
                    break;
                default:
                    result.Add(new AcceleratorDescription(device.AcceleratorType.ToString().ToLowerInvariant(), device.Name, device.MemorySize,
                        device.MaxNumThreadsPerGroup, false, "accelerator type not supported by Kangaroo.Native"));
                    break;
            }
        }
        return result;
    }

    private static IlgpuDevice Open(string kind, Context context, Device device, int? groupWidth = null)
    {
        try
        {
            return new IlgpuDevice(kind, context, device.CreateAccelerator(context), groupWidth);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>" (found: ...)" listing the rejected accelerators of a kind, or nothing.</summary>
    private static string Found(string kind)
    {
        var rejected = Describe().Where(d => d.Kind == kind && !d.Usable).Select(d => $"{d.Name}: {d.Note}").ToList();
        return rejected.Count == 0 ? "" : $" (found but rejected: {string.Join("; ", rejected)})";
    }
}
