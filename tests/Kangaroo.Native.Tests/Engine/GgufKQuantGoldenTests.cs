namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// GGUF files as llama.cpp's quantizer writes them (../shared/models/gguf-kquants: TinyStories-656K widened
/// 2x so that rows are whole 256-value super-blocks, in the mixes Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q4_1, Q5_0,
/// Q5_1 and a "Q4_0" whose embedding is Q6_K) reproduce, from each record's prompt ids, the greedy ids of a
/// float64 forward pass over the weights as llama.cpp dequantizes them (../shared/golden/gguf-kquants-greedy.jsonl),
/// each tensor in its own type on every device; the CPU emulator checks 32 tokens a record.
/// </summary>
public sealed class GgufKQuantGoldenTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly IReadOnlyList<GreedyGolden> Records = GreedyGolden.Load("gguf-kquants-greedy.jsonl");

    private static string ModelPath(string file) => SharedData.Path("models", "gguf-kquants", file);

    private void Check(string mix, string kind) =>
        GgufGoldenTests.CheckFile(Records, ModelPath($"TinyStories-656K-x2-{mix}.gguf"), devices.Get(kind), kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q4_K_M(string kind) => Check("Q4_K_M", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q5_K_M(string kind) => Check("Q5_K_M", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q6_K(string kind) => Check("Q6_K", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q3_K_M(string kind) => Check("Q3_K_M", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q4_1(string kind) => Check("Q4_1", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q5_0(string kind) => Check("Q5_0", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q5_1(string kind) => Check("Q5_1", kind);

    /// <summary>llama.cpp's "Q4_0": Q4_0 matrices and a Q6_K embedding (tied output).</summary>
    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Q4_0(string kind) => Check("Q4_0", kind);

    /// <summary>Every record's file is one of the tests above.</summary>
    [Fact]
    public void EveryGoldenFileIsTested() => Assert.Equal(
        new[] { "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_M", "Q6_K" }.Select(m => $"TinyStories-656K-x2-{m}.gguf"),
        Records.Select(r => r.Model!).Distinct().Order(StringComparer.Ordinal));

    /// <summary>Each tensor keeps the type llama.cpp gave it, on the device too: the Q4_K_M file's layer 1
    /// mixes Q4_K projections with a Q6_K value projection and down projection, and its embedding (the tied
    /// output) is Q6_K; the weights on the device are the file's tensors, byte for byte in number.</summary>
    [Fact]
    public void Each_tensor_keeps_its_own_type()
    {
        const string file = "TinyStories-656K-x2-Q4_K_M.gguf";
        using var checkpoint = ModelCheckpoint.Open(ModelPath(file));
        var c = checkpoint.Config;
        Assert.Equal(ElementType.Q6_K, checkpoint.Read(ModelCheckpoint.Names.Embedding, c.VocabSize, c.Dim).Type);
        Assert.Equal(ElementType.Q4_K, checkpoint.Read(ModelCheckpoint.Names.Layer(1, ModelCheckpoint.Names.Query), c.QueryDim, c.Dim).Type);
        Assert.Equal(ElementType.Q6_K, checkpoint.Read(ModelCheckpoint.Names.Layer(1, ModelCheckpoint.Names.Value), c.KvDim, c.Dim).Type);
        using var model = new LlamaModel(checkpoint, devices.Get("cpu"));
        using var gguf = GgufFile.Open(ModelPath(file));
        var fileBytes = gguf.Tensors.Values.GroupBy(t => t.Type).ToDictionary(g => g.Key, g => g.Sum(t => t.ByteCount));
        Assert.Equal(fileBytes.OrderBy(t => t.Key), model.Weights.BytesByType.OrderBy(t => t.Key));
    }
}
