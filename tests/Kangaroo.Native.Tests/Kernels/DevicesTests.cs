using Kangaroo.Native.Kernels.Ilgpu;
using Xunit.Abstractions;

namespace Kangaroo.Native.Tests.Kernels;

public sealed class DevicesTests(ITestOutputHelper output)
{
    [Fact]
    public void Describe_lists_the_cpu_emulator_and_explains_rejections()
    {
        var seen = Devices.Describe();
        foreach (var d in seen)
            output.WriteLine($"{d.Kind,-9} {(d.Usable ? "usable  " : "REJECTED")} {d.Name}, {d.MemoryBytes / (1 << 20)} MiB, {d.MaxThreadsPerGroup} threads/group: {d.Note}");
        Assert.Contains(seen, d => d.Kind == "ilgpu-cpu" && d.Usable);
        Assert.All(seen.Where(d => !d.Usable), d => Assert.False(string.IsNullOrWhiteSpace(d.Note)));
    }

    [Fact]
    public void Unknown_names_are_rejected()
    {
        var e = Assert.Throws<ArgumentException>(() => Devices.Create("tpu"));
        Assert.Contains("ilgpu-cpu", e.Message);
    }

    [Fact]
    public void Auto_picks_cuda_then_an_opencl_gpu_then_cpu()
    {
        using var device = Devices.Create("auto");
        var openClGpu = TestDevices.Accelerators.Any(d => d is { Kind: "opencl", Usable: true } && d.Note.Contains("GPU"));
        var expected = TestDevices.IsAvailable("cuda") ? "cuda" : openClGpu ? "opencl" : "cpu";
        Assert.Equal(expected, device.Kind);
    }

    [Theory]
    [InlineData("cuda", "CUDA")]
    [InlineData("opencl", "install-opencl.sh")]
    public void Missing_backends_throw_saying_what_is_missing(string kind, string hint)
    {
        if (TestDevices.IsAvailable(kind))
        {
            using var device = Devices.Create(kind);
            Assert.Equal(kind, device.Kind);
            return;
        }
        var e = Assert.Throws<InvalidOperationException>(() => Devices.Create(kind));
        Assert.Contains(hint, e.Message);
    }

    [Fact]
    public void The_cpu_emulator_opens_with_power_of_two_groups()
    {
        using var device = Devices.Create("ilgpu-cpu");
        var ilgpu = Assert.IsType<IlgpuDevice>(device);
        Assert.Equal("ilgpu-cpu", device.Kind);
        AssertPowersOfTwo(ilgpu.Groups, device.Name);
    }

    [Theory, DeviceData("opencl")]
    public void OpenCl_cpu_runtimes_launch_narrow_groups_and_tests_can_ask_for_wide_ones(string kind)
    {
        using var device = Assert.IsType<IlgpuDevice>(Devices.Create(kind));
        using var wide = Assert.IsType<IlgpuDevice>(TestDevices.Create("opencl-wide"));
        output.WriteLine($"{device.Name}; wide: {wide.Name}");
        AssertPowersOfTwo(device.Groups, device.Name);
        Assert.Equal(GroupWidths.Uniform(TestDevices.WideGroup), wide.Groups);
        if (TestDevices.Accelerators.Any(d => d is { Kind: "opencl", Usable: true } && d.Note.Contains("GPU"))) return;
        Assert.True(device.Groups.Rows < TestDevices.WideGroup && device.Groups.MatMul < TestDevices.WideGroup
            && device.Groups.Attention < TestDevices.WideGroup, device.Name);
    }

    private static void AssertPowersOfTwo(GroupWidths groups, string what)
    {
        foreach (var width in new[] { groups.Rows, groups.MatMul, groups.Attention })
            Assert.True(width >= 1 && (width & (width - 1)) == 0, $"{what}: {width}");
    }
}
