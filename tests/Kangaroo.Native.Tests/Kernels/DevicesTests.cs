using Kangaroo.Native.Kernels;
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
    public void Auto_picks_cuda_then_opencl_then_cpu()
    {
        using var device = Devices.Create("auto");
        var expected = TestDevices.IsAvailable("cuda") ? "cuda" : TestDevices.IsAvailable("opencl") ? "opencl" : "cpu";
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
    public void The_cpu_emulator_opens_with_a_power_of_two_group()
    {
        using var device = Devices.Create("ilgpu-cpu");
        var ilgpu = Assert.IsType<Kangaroo.Native.Kernels.Ilgpu.IlgpuDevice>(device);
        Assert.Equal("ilgpu-cpu", device.Kind);
        Assert.True(ilgpu.GroupSize >= 2 && (ilgpu.GroupSize & (ilgpu.GroupSize - 1)) == 0, device.Name);
    }
}
