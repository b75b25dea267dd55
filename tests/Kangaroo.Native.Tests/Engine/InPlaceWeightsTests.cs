using Kangaroo.Native.Kernels.Cpu;
using N = Kangaroo.Native.Loader.ModelCheckpoint.Names;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>On the <c>cpu</c> device a model's weights are the memory-mapped file's own bytes, used in place:
/// every tensor but q and k (permuted from adjacent pairs to halves, so copied) of GGUF and llama2.c files,
/// every tensor of safetensors; weights quantized at load are the device's own. The map outlives the
/// checkpoint and goes with the model, and the model generates the golden ids.</summary>
public sealed class InPlaceWeightsTests
{
    /// <summary>Bytes of every layer's q and k in their stored type: what a file with adjacent-pair rotary rows copies.</summary>
    private static long QueryKeyBytes(ModelCheckpoint checkpoint)
    {
        var c = checkpoint.Config;
        return Enumerable.Range(0, c.Layers).Sum(l =>
            checkpoint.TypeOf(N.Layer(l, N.Query)).ByteCount(c.QueryDim, c.Dim) + checkpoint.TypeOf(N.Layer(l, N.Key)).ByteCount(c.KvDim, c.Dim));
    }

    private static bool Mapped(string path) =>
        File.ReadLines("/proc/self/maps").Any(line => line.EndsWith(Path.GetFullPath(path), StringComparison.Ordinal));

    [Theory]
    [InlineData("gguf", "TinyStories-656K-Q8_0.gguf", true)]
    [InlineData("gguf", "TinyStories-656K-f16.gguf", true)]
    [InlineData("stories260K", "stories260K.bin", true)]
    [InlineData("TinyStories-656K", "", false)]
    public void Weights_are_the_files_bytes_but_permuted_q_and_k(string folder, string file, bool adjacentPairs)
    {
        using var device = new CpuDevice();
        using var checkpoint = ModelCheckpoint.Open(SharedData.Path("models", folder, file));
        using var weights = ModelWeights.Load(checkpoint, device);
        var copied = adjacentPairs ? QueryKeyBytes(checkpoint) : 0;
        Assert.Equal(weights.Bytes - copied, device.BorrowedBytes);
        Assert.Equal(copied, device.AllocatedBytes);
    }

    [Fact]
    public void Weights_quantized_at_load_are_the_devices_own()
    {
        using var device = new CpuDevice();
        using var checkpoint = ModelCheckpoint.Open(SharedData.Path("models", "TinyStories-656K"));
        using var weights = ModelWeights.Load(checkpoint, device, ElementType.Q8_0);
        var c = checkpoint.Config;
        Assert.Equal((2L * c.Layers + 1) * checkpoint.TypeOf(N.FinalNorm).ByteCount(c.Dim), device.BorrowedBytes); // the norms, as stored
    }

    [Fact]
    public void The_map_outlives_the_checkpoint_and_goes_with_the_model()
    {
        var path = GgufGoldenTests.ModelPath("TinyStories-656K-Q8_0.gguf");
        var records = GreedyGolden.Load("gguf-greedy.jsonl").Where(r => r.Model == Path.GetFileName(path)).ToList();
        using var device = new CpuDevice();
        LlamaModel model;
        using (var checkpoint = ModelCheckpoint.Open(path)) model = new LlamaModel(checkpoint, device);
        using (model)
        {
            if (OperatingSystem.IsLinux()) Assert.True(Mapped(path), "the model holds the file's map");
            var decoder = new AutoregressiveDecoder(model);
            foreach (var golden in records) golden.Check(decoder, "cpu");
        }
        Assert.Equal(0, device.BorrowedBytes);
        if (OperatingSystem.IsLinux()) Assert.False(Mapped(path), "the map went with the model");
    }
}
