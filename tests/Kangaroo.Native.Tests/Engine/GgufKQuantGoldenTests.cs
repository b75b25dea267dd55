using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// GGUF files as llama.cpp's quantizer writes them (../shared/models/gguf-kquants: TinyStories-656K widened
/// 2x so that rows are whole 256-value super-blocks, in the mixes Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q4_1, Q5_0,
/// Q5_1 and a "Q4_0" whose embedding is Q6_K) reproduce, from each record's prompt ids, the greedy ids of a
/// float64 forward pass over the weights as llama.cpp dequantizes them (../shared/golden/gguf-kquants-greedy.jsonl),
/// on the reference device the kernels are tested against.
/// </summary>
public sealed class GgufKQuantGoldenTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly IReadOnlyList<GreedyGolden> Records = GreedyGolden.Load("gguf-kquants-greedy.jsonl");

    private static string ModelPath(string file) => SharedData.Path("models", "gguf-kquants", file);

    private void Check(string mix, string kind)
    {
        var file = $"TinyStories-656K-x2-{mix}.gguf";
        using var checkpoint = ModelCheckpoint.Open(ModelPath(file));
        using var model = new LlamaModel(checkpoint, devices.Get(kind));
        var decoder = new AutoregressiveDecoder(model);
        var records = Records.Where(r => r.Model == file).ToList();
        Assert.True(records.Count >= 8, $"{records.Count} records of {file}");
        foreach (var golden in records) golden.Check(decoder, kind);
    }

    [Theory, DeviceData("reference")]
    public void Q4_K_M(string kind) => Check("Q4_K_M", kind);

    [Theory, DeviceData("reference")]
    public void Q5_K_M(string kind) => Check("Q5_K_M", kind);

    [Theory, DeviceData("reference")]
    public void Q6_K(string kind) => Check("Q6_K", kind);

    [Theory, DeviceData("reference")]
    public void Q3_K_M(string kind) => Check("Q3_K_M", kind);

    [Theory, DeviceData("reference")]
    public void Q4_1(string kind) => Check("Q4_1", kind);

    [Theory, DeviceData("reference")]
    public void Q5_0(string kind) => Check("Q5_0", kind);

    [Theory, DeviceData("reference")]
    public void Q5_1(string kind) => Check("Q5_1", kind);

    /// <summary>llama.cpp's "Q4_0": Q4_0 matrices and a Q6_K embedding (tied output).</summary>
    [Theory, DeviceData("reference")]
    public void Q4_0(string kind) => Check("Q4_0", kind);

    /// <summary>Every record's file is one of the tests above.</summary>
    [Fact]
    public void EveryGoldenFileIsTested() => Assert.Equal(
        new[] { "Q3_K_M", "Q4_0", "Q4_1", "Q4_K_M", "Q5_0", "Q5_1", "Q5_K_M", "Q6_K" }.Select(m => $"TinyStories-656K-x2-{m}.gguf"),
        Records.Select(r => r.Model!).Distinct().Order(StringComparer.Ordinal));
}
