namespace Kangaroo.Native.Tests.Speculation;

/// <summary>
/// A draft vocabulary: the draft head scores only some LM-head rows, stacked once at load. Its scores
/// are the full head's for those tokens, greedy output stays the golden ids on every device (verification
/// keeps the whole vocabulary), and the ids travel in the adapter file and are checked there.
/// </summary>
public sealed class DraftVocabularyTests(SharedDevices devices, ConvertedModels converted) : IClassFixture<SharedDevices>, IClassFixture<ConvertedModels>
{
    /// <summary>160 of the 512 ids, spread over the vocabulary.</summary>
    private static readonly int[] Vocabulary = Enumerable.Range(0, 512).Where(id => id % 16 < 5).ToArray();

    private static AdapterWeights ShippedAdapter() =>
        AdapterWeights.Load(Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, InferenceSession.AdapterFileName));

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void DraftRowsScoreExactlyAsTheFullHead(string kind)
    {
        using var model = TestModels.Stories(devices.Get(kind));
        AssertRowsMatchFullHead(model);
    }

    [Theory]
    [InlineData(ElementType.F16)]
    [InlineData(ElementType.BF16)]
    public void DraftRowsKeep16BitHeadsExact(ElementType type)
    {
        using var checkpoint = ModelCheckpoint.Open(converted.Directory(type));
        using var model = new LlamaModel(checkpoint, devices.Get("cpu"));
        AssertRowsMatchFullHead(model);
    }

    private static void AssertRowsMatchFullHead(LlamaModel model)
    {
        var dim = model.Config.Dim;
        var vocab = model.Config.VocabSize;
        var random = new Random(3);
        var hidden = Enumerable.Range(0, 2 * dim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
        using var input = model.Device.Allocate(2 * dim);
        using var full = model.AllocateLogits(2);
        using var draft = model.Device.Allocate(2 * Vocabulary.Length);
        using var head = new DraftLmHead(model, Vocabulary);
        model.Device.Upload(hidden, input);
        model.HeadLogits(input, 2, full);
        head.Logits(input, 2, draft);
        var fullValues = new float[2 * vocab];
        var draftValues = new float[2 * Vocabulary.Length];
        model.Device.Download(full, fullValues);
        model.Device.Download(draft, draftValues);
        Assert.Equal(Vocabulary.Length, head.Size);
        Assert.Equal((long)Vocabulary.Length * dim * (model.LmHead.Type == ElementType.F32 ? 4 : 2), head.Bytes);
        for (var row = 0; row < 2; row++)
            for (var i = 0; i < Vocabulary.Length; i++)
                Assert.Equal(fullValues[row * vocab + Vocabulary[i]], draftValues[row * Vocabulary.Length + i]);
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void DecodersWithADraftVocabularyMatchGolden(string kind)
    {
        using var model = TestModels.Stories(devices.Get(kind));
        var adapter = ShippedAdapter();
        adapter.DraftVocabulary = Vocabulary;
        using var adapterHead = new AdapterHead(model, adapter);
        using var exitHead = new ExitNormHead(model, Vocabulary);
        var decoders = new[]
        {
            new SelfSpeculativeDecoder(model, adapterHead, new SpeculationOptions(adapter.ExitLayer, 6, 0.6f)),
            new SelfSpeculativeDecoder(model, exitHead, new SpeculationOptions(2, 4, 0f)),
        };
        foreach (var decoder in decoders)
        {
            foreach (var golden in GoldenCase.All.Take(kind == "ilgpu-cpu" ? 3 : GoldenCase.All.Count)) // the emulator is slow
            {
                var count = kind == "ilgpu-cpu" ? 16 : golden.MaxNewTokens;
                Assert.Equal(golden.GeneratedIds.Take(count), decoder.Generate(golden.PromptIds, count, new SamplingOptions()));
            }
            Assert.All(decoder.Stats.AcceptLengths, n => Assert.InRange(n, 1, 7));
        }
    }

    [Fact]
    public void AdapterFileKeepsDraftVocabularyAndAcceptance()
    {
        using var directory = new TempDirectory();
        using var model = TestModels.Stories();
        var adapter = AdapterWeights.Random(model.Config.Dim, 2, 1);
        adapter.DraftVocabulary = Vocabulary;
        adapter.Acceptance = new AcceptanceStatistics();
        adapter.Acceptance.Record(1, 0.7f, accepted: true);
        adapter.Acceptance.Record(2, 0.3f, accepted: false);
        var path = directory.File("a.safetensors");
        adapter.Save(path, model.Fingerprint);
        var loaded = AdapterWeights.Load(path);
        Assert.Equal(Vocabulary, loaded.DraftVocabulary);
        Assert.Equal(adapter.Acceptance.ToJson(), loaded.Acceptance!.ToJson());
        Assert.False(loaded.Metadata.ContainsKey(AdapterWeights.DraftVocabularyMeta));
    }

    [Theory]
    [InlineData("", "entry 0 '' is not a token id")]
    [InlineData("1,x,3", "entry 1 'x' is not a token id")]
    [InlineData("1,-2", "entry 1 '-2' is not a token id")]
    [InlineData("3,3", "distinct ids in ascending order")]
    [InlineData("5,4", "distinct ids in ascending order")]
    [InlineData("1,99999999999", "is not a token id")]
    public void MalformedDraftVocabularyNamesTheFile(string ids, string expected)
    {
        using var directory = new TempDirectory();
        var path = directory.File("a.safetensors");
        var adapter = AdapterWeights.Random(64, 2, 1);
        adapter.Metadata[AdapterWeights.DraftVocabularyMeta] = ids; // written verbatim, as a foreign file would
        adapter.Save(path, "target");
        var error = Assert.Throws<ModelFormatException>(() => AdapterWeights.Load(path));
        Assert.StartsWith($"{path}: {AdapterWeights.DraftVocabularyMeta}", error.Message);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void DraftVocabularyOutsideTheModelIsRefused()
    {
        using var model = TestModels.Stories();
        var adapter = AdapterWeights.Random(model.Config.Dim, 2, 1);
        adapter.DraftVocabulary = [1, 2, 512];
        var error = Assert.Throws<ModelFormatException>(() => adapter.CheckFits(model.Config, model.Fingerprint, "a.safetensors"));
        Assert.Equal("a.safetensors: draft vocabulary id 512 is outside the model's vocabulary of 512", error.Message);
    }

    [Fact]
    public void MostFrequentTokensCountNextTokenTargets()
    {
        int[][] sequences = [[1, 5, 5, 7], [1, 7, 9, 5], [2, 9]];
        // targets (all but each first token): 5 x3, 7 x2, 9 x2; ties go to the smaller id.
        Assert.Equal([5, 7], AdapterWeights.MostFrequentTokens(sequences, 16, 2));
        Assert.Equal([5, 7, 9], AdapterWeights.MostFrequentTokens(sequences, 16, 3));
        Assert.Equal([0, 5, 7, 9], AdapterWeights.MostFrequentTokens(sequences, 16, 4));
        Assert.Throws<ArgumentException>(() => AdapterWeights.MostFrequentTokens(sequences, 16, 0));
    }
}
