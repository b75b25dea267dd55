using Kangaroo.Native.Kernels.Cpu;
using Xunit.Sdk;

namespace Kangaroo.Native.Tests.Fuzz;

/// <summary>A converted copy of the embedded model (config.json, model.safetensors, tokenizer.model), made once.</summary>
public sealed class ConvertedModel : IDisposable
{
    private readonly TempDirectory _temp = new();

    public string Directory { get; }

    public ConvertedModel()
    {
        Directory = _temp.File("hf");
        using var source = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        CheckpointConverter.Convert(source, Directory, ElementType.F16);
    }

    public void Dispose() => _temp.Dispose();
}

/// <summary>
/// Seeded mutations of real files in every input format. Each mutated file either loads (and then
/// works: the model goes onto a device, the tokenizer encodes and decodes) or is refused with a
/// <see cref="ModelFormatException"/> naming the file; never another exception, and never more memory
/// (managed, or on the device) than a small multiple of the file's size. KANGAROO_FUZZ_SCALE=N runs N
/// times the cases (the first ones are the same at every scale).
/// </summary>
public sealed class FormatFuzzTests(ConvertedModel converted, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ConvertedModel>, IDisposable
{
    private const int CasesPerFormat = 300;
    private const long AllocationSlack = 8 << 20;
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    public static int Scale =>
        int.TryParse(Environment.GetEnvironmentVariable("KANGAROO_FUZZ_SCALE"), out var scale) && scale > 0 ? scale : 1;

    /// <summary>Allocation allowed for loading a file of <paramref name="length"/> bytes: the loaders
    /// copy weights a few times (file, widened floats, device copy) and hold fixed-size scratch.</summary>
    private static long Budget(long length) => 4 * length + AllocationSlack;

    /// <summary>Runs the cases of one format, logging how many loaded and how many were refused.</summary>
    private void Fuzz(int format, string original, string mutatedPath, Mutator.Layout layout, int hotBytes, Action<string> load)
    {
        var bytes = File.ReadAllBytes(original);
        var (loaded, refused) = (0, 0);
        var (largest, mostPerByte) = (0L, 0.0); // the latter over files at least half the original's size
        for (var i = 0; i < CasesPerFormat * Scale; i++)
        {
            var seed = format * 1_000_003 + i;
            var (mutated, what) = new Mutator(seed).Mutate(bytes, layout, hotBytes);
            File.WriteAllBytes(mutatedPath, mutated);
            var before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                load(mutatedPath);
                loaded++;
            }
            catch (ModelFormatException e) when (e.Message.Contains(Path.GetFileName(mutatedPath)))
            {
                refused++;
            }
            catch (Exception e)
            {
                throw new XunitException($"case {i} (seed {seed}: {what}) of {Path.GetFileName(original)}: {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            largest = Math.Max(largest, allocated);
            if (mutated.Length >= bytes.Length / 2) mostPerByte = Math.Max(mostPerByte, allocated / (double)mutated.Length);
            if (allocated > Budget(mutated.Length))
                throw new XunitException($"case {i} (seed {seed}: {what}) of {Path.GetFileName(original)}: allocated {allocated} bytes for a {mutated.Length}-byte file");
        }
        Assert.True(refused > 0 && loaded + refused == CasesPerFormat * Scale);
        output.WriteLine($"{Path.GetFileName(original)}: {loaded + refused} cases, {loaded} loaded, {refused} refused; " +
                         $"at most {largest / 1e6:F2} MB allocated, {mostPerByte:F2} bytes per byte of file");
    }

    /// <summary>Loads a model onto the reference device and checks the device memory it took.</summary>
    private static void LoadModel(string path, long fileBytes)
    {
        using var checkpoint = ModelCheckpoint.Open(path);
        using var device = new CpuDevice();
        using var model = new LlamaModel(checkpoint, device);
        Assert.True(device.AllocatedBytes <= Budget(fileBytes), $"{device.AllocatedBytes} device bytes for a {fileBytes}-byte model");
    }

    [Fact]
    public void Llama2cCheckpoint()
    {
        var path = _temp.File("model.bin");
        Fuzz(1, SharedData.EmbeddedModel, path, Mutator.Layout.Binary, 7 * sizeof(int), p => LoadModel(p, new FileInfo(p).Length));
    }

    [Fact]
    public void SafeTensorsModel()
    {
        var directory = _temp.File("hf");
        Directory.CreateDirectory(directory);
        File.Copy(Path.Combine(converted.Directory, "config.json"), Path.Combine(directory, "config.json"));
        var original = Path.Combine(converted.Directory, "model.safetensors");
        var header = 8 + (int)BitConverter.ToInt64(File.ReadAllBytes(original).AsSpan(0, 8));
        var path = Path.Combine(directory, "model.safetensors");
        Fuzz(2, original, path, Mutator.Layout.SafeTensors, header, _ => LoadModel(directory, new FileInfo(path).Length));
    }

    /// <summary>llama.cpp's early Q8_0 file (version 2, quantized and F32 tensors, one tensor whose
    /// blocks run across rows), with its embedded tokenizer; the header (metadata and tensor infos) is
    /// where most mutations land.</summary>
    [Fact]
    public void GgufModel()
    {
        var original = SharedData.Path("models", "gguf", "stories260K-q8_0-v2.gguf");
        using var file = GgufFile.Open(original);
        Fuzz(6, original, _temp.File("model.gguf"), Mutator.Layout.Binary, (int)file.DataOffset, p =>
        {
            LoadModel(p, new FileInfo(p).Length);
            var tokenizer = TextTokenizer.Load(p);
            tokenizer.Decode(tokenizer.Encode("Once upon a time", addBos: true));
        });
    }

    [Fact]
    public void ConfigJson()
    {
        var directory = _temp.File("hf-config");
        Directory.CreateDirectory(directory);
        var weights = Path.Combine(directory, "model.safetensors");
        File.Copy(Path.Combine(converted.Directory, "model.safetensors"), weights);
        var path = Path.Combine(directory, "config.json");
        var original = Path.Combine(converted.Directory, "config.json");
        var modelBytes = new FileInfo(weights).Length;
        Fuzz(6, original, path, Mutator.Layout.Json, (int)new FileInfo(original).Length, _ => LoadModel(directory, modelBytes));
    }

    /// <summary>The tokenizer.json of TinyStories-656K as published (a SentencePiece-style BPE).</summary>
    [Fact]
    public void HuggingFaceTokenizerJson()
    {
        var original = SharedData.Path("models", "TinyStories-656K", "tokenizer.json");
        Fuzz(7, original, _temp.File("tokenizer.json"), Mutator.Layout.Json, (int)new FileInfo(original).Length, p =>
        {
            var tokenizer = HfTokenizer.Load(p);
            var ids = tokenizer.Encode("Once upon a time, 'Zoë' ran 42 km. \u2603\n", addSpecialTokens: true);
            Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
            tokenizer.Decode(ids);
        });
    }

    [Fact]
    public void SentencePieceTokenizer()
    {
        var path = _temp.File("tokenizer.model");
        var original = Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, "tok512.model");
        Fuzz(3, original, path, Mutator.Layout.Binary, (int)new FileInfo(original).Length, p =>
        {
            var tokenizer = TextTokenizer.Load(p);
            var ids = tokenizer.Encode("Once upon a time, 'Zoë' ran 42 km. \u2603\n", addBos: true);
            Assert.All(ids, id => Assert.InRange(id, 0, tokenizer.VocabSize - 1));
            tokenizer.Decode(ids);
        });
    }

    /// <summary>llama2.c's tokenizer.bin, written from the embedded SentencePiece model as llama2.c's
    /// export does (spaces for '▁', "\n&lt;s&gt;\n" for BOS).</summary>
    [Fact]
    public void Llama2cTokenizer()
    {
        var model = TextTokenizer.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, "tok512.model")).Model;
        var original = _temp.File("tok512.bin");
        using (var writer = new BinaryWriter(File.Create(original)))
        {
            var texts = model.Pieces.Select(p => System.Text.Encoding.UTF8.GetBytes(p.Piece switch
            {
                "<s>" => "\n<s>\n",
                "</s>" => "\n</s>\n",
                var piece => piece.Replace('\u2581', ' '),
            })).ToList();
            writer.Write(texts.Max(t => t.Length));
            foreach (var (piece, text) in model.Pieces.Zip(texts))
            {
                writer.Write(piece.Score);
                writer.Write(text.Length);
                writer.Write(text);
            }
        }
        Assert.Equal(model.Pieces, TextTokenizer.Load(original).Model.Pieces);
        Fuzz(5, original, _temp.File("tokenizer.bin"), Mutator.Layout.Binary, 64, p =>
        {
            var tokenizer = TextTokenizer.Load(p);
            tokenizer.Decode(tokenizer.Encode("Once upon a time", addBos: true));
        });
    }

    [Fact]
    public void KangarooAdapter()
    {
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        var original = Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, InferenceSession.AdapterFileName);
        var header = 8 + (int)BitConverter.ToInt64(File.ReadAllBytes(original).AsSpan(0, 8));
        var path = _temp.File("adapter.safetensors");
        Fuzz(4, original, path, Mutator.Layout.SafeTensors, header,
            p => AdapterWeights.Load(p).CheckFits(session.Model.Config, session.Model.Fingerprint, p));
    }
}
