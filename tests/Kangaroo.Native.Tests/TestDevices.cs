using System.Reflection;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Kernels.Ilgpu;
using Xunit.Sdk;

namespace Kangaroo.Native.Tests;

/// <summary>
/// Which compute devices tests can run on. <c>cpu</c> (the tuned managed device), <c>reference</c> (the
/// scalar oracle) and <c>ilgpu-cpu</c> (ILGPU's CPU emulator) always exist; <c>opencl</c> and <c>cuda</c> only where ILGPU finds a usable device.
/// Absent devices make their test cases skip visibly, with the reason, except that
/// <c>KANGAROO_REQUIRE_OPENCL=1</c> (set by CI after installing PoCL) makes OpenCL cases run, so a
/// missing OpenCL runtime fails them instead of silently skipping, and <c>KANGAROO_REQUIRE_CUDA=1</c>
/// (set by perf/gpu.sh on a GPU machine) does the same for the CUDA cases.
/// <c>opencl-wide</c> is the OpenCL device with every explicitly grouped kernel at 256 threads per group:
/// CPU runtimes (PoCL) launch narrow groups in the product, so this tier keeps wide groups and
/// multi-level tree reductions covered on a real OpenCL compiler (it runs and skips with <c>opencl</c>).
/// </summary>
public static class TestDevices
{
    public const string RequireOpenClVariable = "KANGAROO_REQUIRE_OPENCL";
    public const string RequireCudaVariable = "KANGAROO_REQUIRE_CUDA";

    /// <summary>The ILGPU device tiers, cheapest first.</summary>
    public static readonly IReadOnlyList<string> IlgpuKinds = ["ilgpu-cpu", "opencl", "opencl-wide", "cuda"];

    /// <summary>Threads per group of every explicitly grouped kernel on the <c>opencl-wide</c> tier.</summary>
    public const int WideGroup = 256;

    private static readonly Lazy<IReadOnlyList<AcceleratorDescription>> Seen = new(Devices.Describe);

    /// <summary>Every accelerator ILGPU sees (cached for the test run).</summary>
    public static IReadOnlyList<AcceleratorDescription> Accelerators => Seen.Value;

    public static bool IsAvailable(string kind) =>
        kind is "cpu" or "reference" or "ilgpu-cpu" || Seen.Value.Any(d => d.Kind == Backend(kind) && d.Usable);

    /// <summary>True when tests for <paramref name="kind"/> must run even if the device is absent.</summary>
    public static bool IsRequired(string kind) => Backend(kind) switch
    {
        "opencl" => Environment.GetEnvironmentVariable(RequireOpenClVariable) == "1",
        "cuda" => Environment.GetEnvironmentVariable(RequireCudaVariable) == "1",
        _ => false,
    };

    /// <summary>Why tests on <paramref name="kind"/> are skipped, or null when they run.</summary>
    public static string? SkipReason(string kind)
    {
        if (IsAvailable(kind) || IsRequired(kind)) return null;
        kind = Backend(kind);
        var rejected = Seen.Value.Where(d => d.Kind == kind).Select(d => $"{d.Name}: {d.Note}").ToList();
        var hint = kind switch
        {
            "opencl" => $"; install PoCL 4+ (scripts/install-opencl.sh), and set {RequireOpenClVariable}=1 to make this a failure",
            "cuda" => $"; perf/gpu.sh runs this tier on a GPU machine with {RequireCudaVariable}=1, which makes this a failure",
            _ => "",
        };
        return rejected.Count == 0
            ? $"no {kind} device on this machine{hint}"
            : $"no usable {kind} device (rejected: {string.Join("; ", rejected)}){hint}";
    }

    /// <summary>Opens a device of <paramref name="kind"/>; throws (failing the test) when it is absent.</summary>
    public static ComputeDevice Create(string kind) =>
        kind == "opencl-wide" ? IlgpuAccelerators.CreateOpenCl(groupWidth: WideGroup) : Devices.Create(kind);

    /// <summary>The device kind <see cref="Devices.Create"/> knows for a test tier.</summary>
    private static string Backend(string kind) => kind == "opencl-wide" ? "opencl" : kind;
}

/// <summary>
/// Theory data: one case, the device kind, skipped with a reason when the device is absent.
/// Stack one per tier: <c>[Theory, DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]</c>
/// (kernel tests add <c>DeviceData("opencl-wide")</c>).
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class DeviceDataAttribute : DataAttribute
{
    private readonly string _kind;

    public DeviceDataAttribute(string kind)
    {
        _kind = kind;
        Skip = TestDevices.SkipReason(kind);
    }

    public override IEnumerable<object[]> GetData(MethodInfo testMethod) => [[_kind]];
}

/// <summary>Devices opened once and shared by the tests of one class (xunit runs a class's tests one
/// at a time; ILGPU accelerator creation and kernel compilation are the slow part on OpenCL/CUDA).</summary>
public sealed class SharedDevices : IDisposable
{
    private readonly Dictionary<string, ComputeDevice> _devices = [];

    public ComputeDevice Get(string kind)
    {
        lock (_devices)
        {
            if (!_devices.TryGetValue(kind, out var device)) _devices[kind] = device = TestDevices.Create(kind);
            return device;
        }
    }

    public void Dispose()
    {
        foreach (var device in _devices.Values) device.Dispose();
        _devices.Clear();
    }
}
