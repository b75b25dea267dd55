using System.Text;

namespace Kangaroo.Native.Tests.Hostile;

/// <summary>Files that load without complaint but would make every answer garbage, or make the loader
/// hang, are refused with a <see cref="ModelFormatException"/> that names the file.</summary>
public sealed class HostileLoaderTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static void AssertRefused(Action load, string file, params string[] problems)
    {
        var e = Assert.Throws<ModelFormatException>(load);
        Assert.Contains(file, e.Message);
        foreach (var problem in problems) Assert.Contains(problem, e.Message);
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    public void NonFiniteWeightIsRefusedAtLoad(float value)
    {
        var path = HostileFiles.Model(_temp.Path, bytes => HostileFiles.SetFloat(bytes, HostileFiles.FinalNormOffset + 8, value));
        AssertRefused(() => InferenceSession.Open(path, "cpu").Dispose(), path, "model.norm.weight", "1 non-finite values");
    }

    /// <summary>q is copied (permuted to halves) a block of rows at a time, and so is every matrix quantized at
    /// load: a non-finite value there is refused as in a weight read in place.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void NonFiniteCopiedWeightIsRefusedAtLoad(bool quantize)
    {
        var path = HostileFiles.Model(_temp.Path, bytes => HostileFiles.SetFloat(bytes, HostileFiles.QueryOffset + 4 * 70, float.NaN));
        AssertRefused(() => InferenceSession.Open(path, "cpu", weights: quantize ? ElementType.Q8_0 : null).Dispose(), path,
            "model.layers.0.self_attn.q_proj.weight", quantize ? "non-finite values" : "1 non-finite values");
    }

    [Fact]
    public void NonFiniteHalfWeightIsCounted()
    {
        Half[] halves = [(Half)1f, Half.NaN, Half.PositiveInfinity, (Half)(-2f)];
        var tensor = new TensorData(ElementType.F16, [4], System.Runtime.InteropServices.MemoryMarshal.AsBytes(halves.AsSpan()));
        Assert.Equal(2, tensor.CountNonFinite());
        ushort[] bf16 = [0x3F80, 0x7FC0, 0xFF80, 0x0001];
        Assert.Equal(2, new TensorData(ElementType.BF16, [4], System.Runtime.InteropServices.MemoryMarshal.AsBytes(bf16.AsSpan())).CountNonFinite());
        var floats = Enumerable.Range(0, 100).Select(i => i == 37 || i == 99 ? float.NegativeInfinity : i).ToArray();
        Assert.Equal(2, TensorData.FromFloats(floats, 100).CountNonFinite());
    }

    [Fact]
    public void AllZeroFinalNormIsRefusedAtLoad()
    {
        var path = HostileFiles.Model(_temp.Path, bytes => Array.Clear(bytes, (int)HostileFiles.FinalNormOffset, 4 * HostileFiles.Dim));
        AssertRefused(() => InferenceSession.Open(path, "cpu").Dispose(), path, "model.norm.weight", "all zeros");
    }

    [Fact]
    public void AllZeroWeightsAreRefusedAtLoad()
    {
        var path = HostileFiles.Model(_temp.Path, bytes => Array.Clear(bytes, 28, bytes.Length - 28));
        AssertRefused(() => InferenceSession.Open(path, "cpu").Dispose(), path, "all zeros");
    }

    /// <summary>A finite model whose activations overflow: generation stops with an error instead of
    /// answering with whatever token the NaN logits point at, greedy (the device's arg max) or sampled.
    /// The ILGPU arg max is checked on OpenCL and CUDA; the CPU emulator runs the same kernel, slowly.</summary>
    [Theory, DeviceData("cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void NonFiniteLogitsStopGeneration(string kind)
    {
        var path = HostileFiles.Model(_temp.Path, bytes =>
        {
            for (var i = 0; i < HostileFiles.Dim; i++) HostileFiles.SetFloat(bytes, HostileFiles.FinalNormOffset + 4 * i, float.MaxValue);
        });
        using var session = InferenceSession.Open(path, () => TestDevices.Create(kind));
        foreach (var name in new[] { "autoregressive", "early-exit" })
        foreach (var temperature in kind == "cpu" ? new[] { 0f, 1f } : [0f]) // sampling runs on the host, the same on every device
        {
            var decoder = session.CreateDecoder(name, exitLayer: 2);
            var e = Assert.Throws<InvalidOperationException>(() => decoder.Generate([1], 4, new SamplingOptions(temperature)).ToList());
            Assert.Contains("non-finite logits", e.Message);
        }
    }

    /// <summary>A header length one byte short still parses when the header ends in padding; every
    /// tensor would then be read one byte off.</summary>
    [Fact]
    public void SafeTensorsHeaderLengthOneByteShortIsRefused()
    {
        var path = _temp.File("short.safetensors");
        SafeTensorsWriter.Write(path, [new SafeTensorOutput("a", ElementType.F32, [2], new byte[8])]);
        var bytes = File.ReadAllBytes(path);
        var headerLength = BitConverter.ToInt64(bytes);
        Assert.Equal((byte)' ', bytes[8 + headerLength - 1]); // padding, so the shorter header is still JSON
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), headerLength - 1);
        File.WriteAllBytes(path, bytes);
        AssertRefused(() => SafeTensorsFile.Open(path).Dispose(), path, "data section is 9 bytes but the tensors end at byte 8");
    }

    [Fact]
    public void SafeTensorsBytesAfterTheLastTensorAreRefused()
    {
        var path = _temp.File("long.safetensors");
        SafeTensorsWriter.Write(path, [new SafeTensorOutput("a", ElementType.F32, [2], new byte[8])]);
        File.AppendAllText(path, "x");
        AssertRefused(() => SafeTensorsFile.Open(path).Dispose(), path, "tensors end at byte 8");
    }

    [Fact]
    public void WritingNeverTouchesAFileOfTheUsersBesideTheOutput()
    {
        var path = _temp.File("a.safetensors");
        File.WriteAllText(path + ".tmp", "the user's own file");
        SafeTensorsWriter.Write(path, [new SafeTensorOutput("a", ElementType.F32, [1], new byte[4])]);
        Assert.Equal("the user's own file", File.ReadAllText(path + ".tmp"));
        Assert.Single(Directory.GetFiles(_temp.Path, "*.tmp"));
    }

    [Fact]
    public void SafeTensorsGapBetweenTensorsIsRefused()
    {
        var path = _temp.File("gap.safetensors");
        var header = Encoding.UTF8.GetBytes("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""");
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((long)header.Length), .. header, .. new byte[12]]);
        AssertRefused(() => SafeTensorsFile.Open(path).Dispose(), path, "bytes [4, 8) of the data section belong to no tensor");
    }

    [Theory]
    [InlineData("<0xZZ>")]
    [InlineData("")]
    [InlineData("<0x41")]
    public void MalformedBytePieceIsRefused(string piece)
    {
        var path = HostileFiles.Tokenizer(_temp.File("tokenizer.model"),
            pieces => pieces.Select(p => p.Type == PieceType.Byte && p.Piece == "<0x41>" ? p with { Piece = piece } : p).ToList());
        AssertRefused(() => TextTokenizer.Load(path), path, $"'{piece}' has type BYTE but is not of the form <0xHH>");
    }

    [Theory]
    [InlineData(PieceType.Control)]
    [InlineData(PieceType.Unused)]
    public void TokenizerWithoutTextPiecesIsRefused(PieceType type)
    {
        var path = HostileFiles.Tokenizer(_temp.File("tokenizer.model"),
            pieces => pieces.Select((p, i) => i == 0 ? p : p with { Type = type, Piece = $"<c{i}>" }).ToList());
        AssertRefused(() => TextTokenizer.Load(path), path, "no piece stands for text");
    }

    [PosixFact]
    public async Task FifoIsNeverOpened()
    {
        var fifo = HostileFiles.Fifo(_temp.File("model.bin"));
        var load = Task.Run(() => Assert.Throws<ModelFormatException>(() => ModelCheckpoint.Open(fifo)));
        var error = await load.WaitAsync(TimeSpan.FromSeconds(30)); // a TimeoutException when opening blocked
        Assert.Contains("not a regular file", error.Message);
        var tokenizer = HostileFiles.Fifo(_temp.File("tokenizer.model"));
        AssertRefused(() => TextTokenizer.Load(tokenizer), tokenizer, "not a regular file");
        AssertRefused(() => SafeTensorsFile.Open("/dev/zero"), "/dev/zero", "not a regular file");
        Assert.Equal(FileKind.Regular, InputFile.KindOf(SharedData.EmbeddedModel));
        Assert.Equal(FileKind.Other, InputFile.KindOf("/dev/null"));
    }
}
