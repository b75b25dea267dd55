using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Tests.Loader;

/// <summary>
/// Conversion reads, converts and writes a tensor a block of rows at a time. Its output is byte for byte what
/// the converter wrote when it held whole tensors (and, for llama2.c checkpoints, the whole model) in memory,
/// and it allocates a few blocks whatever the model's size.
/// </summary>
public sealed class StreamingConversionTests
{
    /// <summary>SHA-256 (first 16 hex digits) of the outputs of the converter before it streamed (commit 119a6a2),
    /// for each kind of source, output format and dtype; an HF directory's hash is over "name:sha256\n" of its
    /// files in name order. The llama2.c source is stories260K.bin (q and k in adjacent pairs, down projections
    /// whose rows are not whole blocks); the GGUF sources are quantized; the HF source is stories260K in bf16.</summary>
    [Theory]
    [InlineData("llama2c", "hf", "f32", "73543b4740fc5b0f")]
    [InlineData("llama2c", "hf", "f16", "16e700e0789cf20c")]
    [InlineData("llama2c", "hf", "bf16", "7fc805ca4fa71a8f")]
    [InlineData("llama2c", "gguf", "f32", "adac9d8747d541bf")]
    [InlineData("llama2c", "gguf", "f16", "f61b86718970626b")]
    [InlineData("llama2c", "gguf", "bf16", "bb57bd2ca51995f8")]
    [InlineData("llama2c", "gguf", "q8_0", "fa6f29f66cfc8f24")]
    [InlineData("llama2c", "gguf", "q4_0", "8f00c27ceff34dc9")]
    [InlineData("gguf-q8", "hf", "f32", "54dda1db7e7557ad")]
    [InlineData("gguf-q8", "hf", "f16", "63249c2e398f6a5d")]
    [InlineData("gguf-q8", "hf", "bf16", "20cde05944e985ed")]
    [InlineData("gguf-q8", "gguf", "f32", "aef3cc5054eb1428")]
    [InlineData("gguf-q8", "gguf", "f16", "6713b888f16277b7")]
    [InlineData("gguf-q8", "gguf", "bf16", "93c3565bb46e51d7")]
    [InlineData("gguf-q8", "gguf", "q8_0", "b8101161c7562776")]
    [InlineData("gguf-q8", "gguf", "q4_0", "0db3ec3c0fa2289c")]
    [InlineData("gguf-q4", "hf", "f32", "6c3a007fa3912108")]
    [InlineData("gguf-q4", "hf", "f16", "4e5dd9c5b9e3efe0")]
    [InlineData("gguf-q4", "hf", "bf16", "82bf8f17268d7bd9")]
    [InlineData("gguf-q4", "gguf", "f32", "3eb2e9d968cae473")]
    [InlineData("gguf-q4", "gguf", "f16", "2cf2308233571642")]
    [InlineData("gguf-q4", "gguf", "bf16", "074c40407e4107a4")]
    [InlineData("gguf-q4", "gguf", "q8_0", "b8471f05b09125c9")]
    [InlineData("gguf-q4", "gguf", "q4_0", "4e99d8d4aac67b1b")]
    [InlineData("hf-bf16", "hf", "f32", "c11e3011c20a64df")]
    [InlineData("hf-bf16", "hf", "f16", "2755bd1b14280146")]
    [InlineData("hf-bf16", "hf", "bf16", "7fc805ca4fa71a8f")]
    [InlineData("hf-bf16", "gguf", "f32", "146526b51ad3b853")]
    [InlineData("hf-bf16", "gguf", "f16", "af6fb197b75db399")]
    [InlineData("hf-bf16", "gguf", "bf16", "188ceb336eb1b395")]
    [InlineData("hf-bf16", "gguf", "q8_0", "49de7a6022635dad")]
    [InlineData("hf-bf16", "gguf", "q4_0", "f721b0fbf0baf933")]
    public void OutputIsByteForByteThatOfTheWholeTensorConverter(string source, string format, string dtype, string sha256)
    {
        using var temp = new TempDirectory();
        var path = source switch
        {
            "llama2c" => SharedData.Path("models", "stories260K", "stories260K.bin"),
            "gguf-q8" => SharedData.Path("models", "gguf", "stories260K-q8_0-v2.gguf"),
            "gguf-q4" => SharedData.Path("models", "gguf", "TinyStories-656K-Q4_0.gguf"),
            _ => temp.File("stories260K-hf-bf16"), // the name becomes GGUF's general.name
        };
        if (source == "hf-bf16")
        {
            using var stories = ModelCheckpoint.Open(SharedData.Path("models", "stories260K", "stories260K.bin"));
            CheckpointConverter.Convert(stories, path, ElementType.BF16);
        }
        using var checkpoint = ModelCheckpoint.Open(path);
        var output = temp.File(format == "hf" ? "out" : "out.gguf");
        if (format == "hf") CheckpointConverter.Convert(checkpoint, output, ElementTypes.Parse(dtype));
        else CheckpointConverter.ConvertToGguf(checkpoint, output, ElementTypes.Parse(dtype));
        Assert.Equal(sha256, Hash(output)[..16]);
    }

    /// <summary>A llama2.c checkpoint of 88 MB whose tensors span several blocks (q and k several blocks of whole
    /// heads): every tensor is what converting it whole gives, and converting allocates a few blocks, not the
    /// model (before streaming, the checkpoint alone was read into 88 MB of arrays).</summary>
    [Theory]
    [InlineData("gguf", ElementType.Q8_0)]
    [InlineData("gguf", ElementType.F16)]
    [InlineData("hf", ElementType.BF16)]
    public void ALargeModelIsConvertedInBlocksOfRows(string format, ElementType type)
    {
        using var temp = new TempDirectory();
        var config = new LlamaConfig(Dim: 1536, HiddenDim: 2048, Layers: 1, Heads: 24, KvHeads: 8, VocabSize: 2048, MaxSeqLen: 64,
            NormEps: 1e-5f, RopeTheta: 10000f, TiedEmbeddings: false, BosId: 1, EosIds: [1]).Validate("test");
        var model = WriteLlama2c(temp.File("large.bin"), config);
        Assert.True(new FileInfo(model).Length > 80_000_000);
        using var source = ModelCheckpoint.Open(model);
        var output = temp.File(format == "hf" ? "out" : "out.gguf");

        var before = GC.GetAllocatedBytesForCurrentThread();
        if (format == "hf") CheckpointConverter.Convert(source, output, type);
        else CheckpointConverter.ConvertToGguf(source, output, type);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < 4L * ModelCheckpoint.RowBlockBytes + (4 << 20), $"converting allocated {allocated / 1e6:F1} MB");

        using var converted = ModelCheckpoint.Open(output);
        foreach (var (name, shape) in ModelCheckpoint.Names.Expected(config))
        {
            var expectedType = format == "gguf" && shape.Length == 1 ? ElementType.F32 : type;
            Assert.True(converted.Read(name, shape).Bytes.SequenceEqual(CheckpointConverter.Encode(source.Read(name, shape), expectedType)), name);
        }
    }

    /// <summary>llama2.c's legacy layout, random weights in [-0.5, 0.5), norms of 1.</summary>
    private static string WriteLlama2c(string path, LlamaConfig c)
    {
        var state = 0x9E3779B97F4A7C15UL;
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        foreach (var field in new[] { c.Dim, c.HiddenDim, c.Layers, c.Heads, c.KvHeads, -c.VocabSize, c.MaxSeqLen })
            stream.Write(BitConverter.GetBytes(field));
        void Put(long count, bool ones = false)
        {
            var values = new float[count];
            for (var i = 0; i < values.Length; i++)
            {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                values[i] = ones ? 1f : (state >> 40) * (1f / (1 << 24)) - 0.5f;
            }
            stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
        }
        Put((long)c.VocabSize * c.Dim);
        Put(c.Dim, ones: true);
        Put((long)c.Dim * c.Dim);
        Put((long)c.KvDim * c.Dim);
        Put((long)c.KvDim * c.Dim);
        Put((long)c.Dim * c.Dim);
        Put(c.Dim, ones: true);
        Put((long)c.HiddenDim * c.Dim);
        Put((long)c.Dim * c.HiddenDim);
        Put((long)c.HiddenDim * c.Dim);
        Put(c.Dim, ones: true);
        Put((long)c.MaxSeqLen * c.HeadDim); // rotary tables, unused
        Put((long)c.VocabSize * c.Dim);
        return path;
    }

    private static string Hash(string path)
    {
        if (File.Exists(path)) return Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));
        var listing = string.Concat(Directory.GetFiles(path).Select(Path.GetFileName).Order(StringComparer.Ordinal)
            .Select(name => $"{name}:{Hash(System.IO.Path.Combine(path, name!))}\n"));
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(listing)));
    }
}
