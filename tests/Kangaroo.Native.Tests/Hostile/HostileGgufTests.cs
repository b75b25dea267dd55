using System.Buffers.Binary;
using System.Text;

namespace Kangaroo.Native.Tests.Hostile;

/// <summary>llama.cpp's stories260K-f32.gguf with one thing wrong: each is refused with one
/// <see cref="ModelFormatException"/> naming the file and the problem, having allocated no more than
/// the file's size (hostile counts and lengths are checked against the bytes left before anything is
/// sized from them).</summary>
public sealed class HostileGgufTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly byte[] Original = File.ReadAllBytes(GgufGoldenTests.ModelPath("stories260K-f32.gguf"));

    /// <summary>Where <paramref name="text"/> (a key or tensor name, with its u64 length before it) ends in the original.</summary>
    private static int After(string text)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var at = Original.AsSpan().IndexOf(bytes);
        Assert.True(at > 8);
        Assert.Equal((ulong)bytes.Length, BinaryPrimitives.ReadUInt64LittleEndian(Original.AsSpan(at - 8)));
        return at + bytes.Length;
    }

    private string Write(Action<byte[]> change, int? length = null)
    {
        var bytes = Original[..(length ?? Original.Length)];
        change(bytes);
        var path = _temp.File("model.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>Allocations of any refusal that no file size explains (first-use initialisation, the
    /// message, file handles, the map): a count or length taken on trust would allocate far more.</summary>
    private const long Overhead = 1 << 20;

    /// <summary>Opens the model and its tokenizer; returns the one error, checking what was allocated.</summary>
    private static string Refusal(string path)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var error = Assert.Throws<ModelFormatException>(() =>
        {
            using var checkpoint = ModelCheckpoint.Open(path);
            TextTokenizer.Load(path);
        });
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(allocated < new FileInfo(path).Length + Overhead, $"{allocated} bytes allocated for a {new FileInfo(path).Length}-byte file");
        Assert.StartsWith(path + ": ", error.Message);
        Assert.DoesNotContain('\n', error.Message);
        return error.Message;
    }

    [Theory]
    [InlineData(8, "tensor count 9223372036854775808 is impossible")]
    [InlineData(16, "metadata count 9223372036854775808 is impossible")]
    public void AbsurdCountsAreRefusedBeforeAllocating(int offset, string fragment) =>
        Assert.Contains(fragment, Refusal(Write(b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(offset), 1UL << 63))));

    [Fact]
    public void StringOfTwoToTheSixtySecondBytesIsRefused() =>
        Assert.Contains("metadata key of 4611686018427387904 bytes at offset 32 runs past the end",
            Refusal(Write(b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(24), 1UL << 62))));

    [Fact]
    public void AbsurdArrayLengthIsRefused()
    {
        // tokenizer.ggml.tokens: type 9 (array), element type 8 (string), then the u64 length.
        var length = After("tokenizer.ggml.tokens") + 8;
        Assert.Contains("metadata 'tokenizer.ggml.tokens' array length 4611686018427387904 is impossible",
            Refusal(Write(b => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(length), 1UL << 62))));
    }

    [Theory]
    [InlineData(6, "metadata 'llama.block_count' is a float32")]
    [InlineData(13, "metadata 'llama.block_count' has unknown value type 13")]
    public void MetadataOfTheWrongTypeIsRefused(uint type, string fragment) =>
        Assert.Contains(fragment, Refusal(Write(b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(After("llama.block_count")), type))));

    [Fact]
    public void UnknownArchitectureIsRefusedByName() =>
        Assert.Contains("architecture 'mamba' is not supported (supported: llama)",
            Refusal(Write(b => "mamba"u8.CopyTo(b.AsSpan(After("general.architecture") + 4 + 8)))));

    [Theory]
    [InlineData(99u, "tensor 'token_embd.weight' has ggml type 99 (unknown), which is not supported")]
    [InlineData(15u, "tensor 'token_embd.weight' has ggml type 15 (Q8_K), which is not supported")]
    [InlineData(20u, "tensor 'token_embd.weight' has ggml type 20 (IQ4_NL), which is not supported")]
    [InlineData(35u, "tensor 'token_embd.weight' has ggml type 35 (TQ2_0), which is not supported")]
    [InlineData(40u, "tensor 'token_embd.weight' has ggml type 40 (unknown), which is not supported")]
    public void UnknownGgmlTypeIsRefusedNamingTypeAndTensor(uint type, string fragment) =>
        // token_embd.weight's info: name, u32 dimension count, two u64 dimensions, then the u32 type.
        Assert.Contains(fragment, Refusal(Write(b => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(After("token_embd.weight") + 4 + 16), type))));

    [Fact]
    public void TensorDataPastTheEndIsRefused() =>
        Assert.Contains("tensor 'blk.4.ffn_norm.weight' ([64] x F32, 256 bytes at data offset 1170944) runs past the end of the 1171100-byte data section (truncated?)",
            Refusal(Write(_ => { }, Original.Length - 100)));

    [Theory]
    [InlineData(4, "file is 4 bytes")]
    [InlineData(20, "tensor count 48 is impossible: 48 entries of at least 24 bytes do not fit in the 4 bytes left of the 20-byte file")]
    [InlineData(5000, "the file ends at 5000 (truncated?)")]
    public void TruncatedFileIsRefused(int length, string fragment) =>
        Assert.Contains(fragment, Refusal(Write(_ => { }, length)));

    [Fact]
    public void TruncatedFileThroughTheCommandIsOneLine()
    {
        var path = Write(_ => { }, 5000);
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--model", path, "--prompt", "Once", "--device", "cpu"), $"{path}: ", "truncated?");
    }
}
