namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// GGUF files as llama.cpp's tools wrote them (../shared/models/gguf: versions 1, 2 and 3; F32, F16,
/// Q8_0 and Q4_0) reproduce, from each record's prompt ids, the greedy ids of a float64 reference that
/// reads the GGUF itself, dequantizes and rotates adjacent pairs as llama.cpp does
/// (../shared/golden/gguf-greedy.jsonl), on every device and on the reference device the kernels are
/// tested against; the CPU emulator checks 32 tokens a record.
/// </summary>
public sealed class GgufGoldenTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly IReadOnlyList<GreedyGolden> Records = GreedyGolden.Load("gguf-greedy.jsonl");

    public static string ModelPath(string file) => SharedData.Path("models", "gguf", file);

    private void Check(string file, string kind) => CheckFile(Records, ModelPath(file), devices.Get(kind), kind);

    /// <summary>The GGUF at <paramref name="path"/> reproduces each of its (at least 8) records on the device.</summary>
    internal static void CheckFile(IEnumerable<GreedyGolden> records, string path, ComputeDevice device, string kind)
    {
        var file = Path.GetFileName(path);
        using var checkpoint = ModelCheckpoint.Open(path);
        Assert.IsType<GgufCheckpoint>(checkpoint);
        using var model = new LlamaModel(checkpoint, device);
        var decoder = new AutoregressiveDecoder(model);
        var ofFile = records.Where(r => r.Model == file).ToList();
        Assert.True(ofFile.Count >= 8, $"{ofFile.Count} records of {file}");
        foreach (var golden in ofFile) golden.Check(decoder, kind);
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Stories260KF32Version3(string kind) => Check("stories260K-f32.gguf", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Stories260KF32Version1(string kind) => Check("stories260K-f32-v1.gguf", kind);

    /// <summary>Its ffn_down rows (172 values) are not whole blocks: read dequantized.</summary>
    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Stories260KQ8_0Version2(string kind) => Check("stories260K-q8_0-v2.gguf", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void TinyStoriesF16(string kind) => Check("TinyStories-656K-f16.gguf", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void TinyStoriesQ8_0(string kind) => Check("TinyStories-656K-Q8_0.gguf", kind);

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void TinyStoriesQ4_0(string kind) => Check("TinyStories-656K-Q4_0.gguf", kind);

    /// <summary>Every record's file is one of the tests above.</summary>
    [Fact]
    public void EveryGoldenFileIsTested() => Assert.Equal(
        ["TinyStories-656K-Q4_0.gguf", "TinyStories-656K-Q8_0.gguf", "TinyStories-656K-f16.gguf", "stories260K-f32-v1.gguf", "stories260K-f32.gguf", "stories260K-q8_0-v2.gguf"],
        Records.Select(r => r.Model!).Distinct().Order(StringComparer.Ordinal));

    /// <summary>Quantized matrices stay quantized on the device.</summary>
    [Fact]
    public void QuantizedWeightsStayQuantized()
    {
        using var checkpoint = ModelCheckpoint.Open(ModelPath("TinyStories-656K-Q4_0.gguf"));
        Assert.Equal(ElementType.Q4_0, checkpoint.Read(ModelCheckpoint.Names.Layer(0, ModelCheckpoint.Names.Query), 128, 128).Type);
        Assert.Equal(ElementType.Q4_0, checkpoint.Read(ModelCheckpoint.Names.LmHead, 2048, 128).Type);
    }

    /// <summary>The stories260K files carry llama2.c's tokenizer: the prompts encode to the golden ids.
    /// (TinyStories-656K's files carry its BPE vocabulary with every score -1000 and no merges, which
    /// SentencePiece-style merging does not tokenise as Hugging Face's BPE does, so its golden prompt ids
    /// are Hugging Face's and are only fed to the model.)</summary>
    [Theory]
    [InlineData("stories260K-f32.gguf")]
    [InlineData("stories260K-f32-v1.gguf")]
    [InlineData("stories260K-q8_0-v2.gguf")]
    public void EmbeddedTokenizerEncodesThePrompts(string file)
    {
        var tokenizer = TextTokenizer.Load(ModelPath(file));
        foreach (var golden in Records.Where(r => r.Model == file))
            Assert.Equal(golden.PromptIds, tokenizer.EncodePrompt(golden.Prompt));
    }
}
