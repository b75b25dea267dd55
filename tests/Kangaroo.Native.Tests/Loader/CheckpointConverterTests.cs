namespace Kangaroo.Native.Tests.Loader;

public class CheckpointConverterTests
{
    private static readonly string Stories = SharedData.Path("models", "stories260K", "stories260K.bin");

    [Fact]
    public void F32ConversionIsBitExact()
    {
        using var temp = new TempDirectory();
        using var source = ModelCheckpoint.Open(Stories);
        var written = CheckpointConverter.Convert(source, temp.Path, ElementType.F32);
        Assert.Contains(temp.File("model.safetensors"), written);
        Assert.Contains(temp.File("config.json"), written);
        Assert.Contains(temp.File("tokenizer.model"), written);

        using var converted = ModelCheckpoint.Open(temp.Path);
        Assert.IsType<HfModelDirectory>(converted);
        Assert.Equal(source.Config.ToJson(), converted.Config.ToJson());
        Assert.True(converted.Config.TiedEmbeddings);
        using (var stored = SafeTensorsFile.Open(temp.File("model.safetensors")))
            Assert.False(stored.Contains(ModelCheckpoint.Names.LmHead)); // stored once; the tied LM head reads the embedding
        var expected = ModelCheckpoint.Names.Expected(source.Config);
        Assert.Equal(1 + 9 * 5 + 1, expected.Count);
        foreach (var (name, shape) in expected)
        {
            var a = source.Read(name, shape);
            var b = converted.Read(name, shape);
            Assert.Equal(ElementType.F32, b.Type);
            Assert.True(a.Bytes.SequenceEqual(b.Bytes), $"tensor {name} differs");
        }
        using var file = SafeTensorsFile.Open(temp.File("model.safetensors"));
        Assert.Equal(expected.Count, file.Tensors.Count);
        Assert.Equal("pt", file.Metadata["format"]);
        // The tokenizer beside the checkpoint (tok512.model) is copied byte for byte.
        Assert.Equal(File.ReadAllBytes(SharedData.Path("models", "stories260K", "tok512.model")), File.ReadAllBytes(temp.File("tokenizer.model")));
        Assert.Equal(temp.File("tokenizer.model"), converted.TokenizerPath);
    }

    [Theory]
    [InlineData(ElementType.F16)]
    [InlineData(ElementType.BF16)]
    public void HalfPrecisionConversionIsWithinRounding(ElementType type)
    {
        using var temp = new TempDirectory();
        using var source = ModelCheckpoint.Open(Stories);
        CheckpointConverter.Convert(source, temp.Path, type);
        using var converted = ModelCheckpoint.Open(temp.Path);
        // Half an ulp: 2^-11 relative for f16 (10 mantissa bits), 2^-8 for bf16 (7); f16 subnormals 2^-25 absolute.
        var (relative, absolute) = type == ElementType.F16 ? (Math.Pow(2, -11), Math.Pow(2, -25)) : (Math.Pow(2, -8), 0.0);
        foreach (var (name, shape) in ModelCheckpoint.Names.Expected(source.Config))
        {
            var a = source.Read(name, shape).ToFloats();
            var tensor = converted.Read(name, shape);
            Assert.Equal(type, tensor.Type);
            var b = tensor.ToFloats();
            for (var i = 0; i < a.Length; i++)
            {
                var error = Math.Abs((double)a[i] - b[i]);
                Assert.True(error <= Math.Max(relative * Math.Abs(a[i]), absolute), $"{name}[{i}]: {a[i]} became {b[i]}");
            }
        }
    }

    [Fact]
    public void BFloat16RoundsToNearestEven()
    {
        static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);
        Assert.Equal(0x3F80, CheckpointConverter.ToBFloat16(1f));
        Assert.Equal(0x3F80, CheckpointConverter.ToBFloat16(F(0x3F807FFF))); // below half: down
        Assert.Equal(0x3F81, CheckpointConverter.ToBFloat16(F(0x3F808001))); // above half: up
        Assert.Equal(0x3F80, CheckpointConverter.ToBFloat16(F(0x3F808000))); // tie, even stays
        Assert.Equal(0x3F82, CheckpointConverter.ToBFloat16(F(0x3F818000))); // tie, odd goes up to even
        Assert.Equal(0xBF82, CheckpointConverter.ToBFloat16(F(0xBF818000))); // sign kept
        Assert.Equal(0x7F80, CheckpointConverter.ToBFloat16(float.PositiveInfinity));
        Assert.Equal(0x7F80, CheckpointConverter.ToBFloat16(float.MaxValue)); // rounds up past the largest bf16
        Assert.True(float.IsNaN(BitConverter.UInt32BitsToSingle((uint)CheckpointConverter.ToBFloat16(F(0x7F800001)) << 16)));
        Assert.Equal(0x8000, CheckpointConverter.ToBFloat16(-0f));
    }

    [Fact]
    public void Llama2cTokenizerBinBecomesModelProto()
    {
        using var source = new TempDirectory();
        File.Copy(Stories, source.File("stories260K.bin"));
        File.Copy(SharedData.Path("models", "stories260K", "tok512.bin"), source.File("tok512.bin"));
        using var checkpoint = ModelCheckpoint.Open(source.File("stories260K.bin"));
        Assert.Equal(source.File("tok512.bin"), checkpoint.TokenizerPath);
        using var output = new TempDirectory();
        CheckpointConverter.Convert(checkpoint, output.Path, ElementType.BF16);

        var written = TextTokenizer.Load(output.File("tokenizer.model"));
        var reference = TextTokenizer.Load(SharedData.Path("models", "stories260K", "tok512.model"));
        Assert.Equal(reference.Model.Pieces, written.Model.Pieces);
        const string text = "Lily and Ben went to the park. 東京 😀";
        Assert.Equal(reference.Encode(text, true), written.Encode(text, true));
    }

    [Fact]
    public void ConfigRoundTrips()
    {
        using var temp = new TempDirectory();
        var config = new LlamaConfig(4096, 11008, 32, 32, 8, 32000, 4096, 1e-6f, 500000f, false, 1, [2, 31999]).Validate("test");
        File.WriteAllText(temp.File("config.json"), config.ToJson());
        var read = LlamaConfig.FromJsonFile(temp.File("config.json"));
        Assert.Equal(config with { EosIds = read.EosIds }, read);
        Assert.Equal(config.EosIds, read.EosIds);
        Assert.Equal(config.ToJson(), read.ToJson());
    }

    [Fact]
    public void RefusesToOverwriteItsSource()
    {
        using var temp = new TempDirectory();
        using var source = ModelCheckpoint.Open(Stories);
        CheckpointConverter.Convert(source, temp.Path, ElementType.F32);
        using var hf = ModelCheckpoint.Open(temp.Path);
        Assert.Throws<ArgumentException>(() => CheckpointConverter.Convert(hf, temp.Path, ElementType.F16));
    }
}

public class CheckpointConverterOverflowTests
{
    [Fact]
    public void F16OverflowIsAnErrorNotInfinity()
    {
        using var temp = new TempDirectory();
        var config = new LlamaConfig(4, 8, 1, 2, 1, 6, 16, 1e-5f, 10000f, true, 1, [2]).Validate("test");
        Directory.CreateDirectory(temp.File("src"));
        File.WriteAllText(temp.File("src/config.json"), config.ToJson());
        var tensors = ModelCheckpoint.Names.Expected(config).Select(t =>
        {
            var values = new float[t.Shape.Aggregate(1, (a, b) => a * b)];
            Array.Fill(values, 0.5f);
            if (t.Name == ModelCheckpoint.Names.FinalNorm) values[1] = 70000f;
            return new SafeTensorOutput(t.Name, ElementType.F32, t.Shape, System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        });
        SafeTensorsWriter.Write(temp.File("src/model.safetensors"), tensors);
        using var source = ModelCheckpoint.Open(temp.File("src"));
        var e = Assert.Throws<ModelFormatException>(() => CheckpointConverter.Convert(source, temp.File("out"), ElementType.F16));
        Assert.Contains("model.norm.weight", e.Message);
        Assert.Contains("too large for F16", e.Message);
        CheckpointConverter.Convert(source, temp.File("out"), ElementType.BF16); // bf16 has float's range
        Assert.False(File.Exists(temp.File("out/model.safetensors.tmp")));
    }
}
