using Kangaroo.Native.Kernels.Cpu;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>The embedded stories260K model on a device (by default <c>cpu</c>), for engine tests.</summary>
public static class TestModels
{
    public static LlamaModel Stories(ComputeDevice? device = null, string? path = null)
    {
        using var checkpoint = ModelCheckpoint.Open(path ?? SharedData.EmbeddedModel);
        return new LlamaModel(checkpoint, device ?? new CpuDevice());
    }
}
