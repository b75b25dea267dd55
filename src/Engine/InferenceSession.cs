using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Engine;

/// <summary>A model loaded onto a device with its tokenizer: what the CLI commands and embedding
/// programs start from.</summary>
public sealed class InferenceSession : IDisposable
{
    /// <summary>The device the model runs on; the session owns it.</summary>
    public ComputeDevice Device { get; }
    /// <summary>The model on <see cref="Device"/>, with its KV cache.</summary>
    public LlamaModel Model { get; }
    /// <summary>The model's tokenizer; null when none was given or found beside the model.</summary>
    public ModelTokenizer? Tokenizer { get; }
    /// <summary>The path the model was opened from.</summary>
    public string ModelPath { get; }

    /// <summary>Every file the session was opened from: the model's files and the tokenizer.</summary>
    public IReadOnlyList<string> Files { get; }

    private InferenceSession(string modelPath, IReadOnlyList<string> files, ComputeDevice device, LlamaModel model, ModelTokenizer? tokenizer)
    {
        ModelPath = modelPath;
        Files = files;
        Device = device;
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>Opens a model (Hugging Face directory, GGUF file or llama2.c .bin) on a device; the tokenizer is
    /// <paramref name="tokenizerPath"/> or the one found beside the model. <paramref name="context"/>
    /// is the positions of the KV cache (the longest prompt plus generation), by default
    /// <see cref="ContextSize.Default"/>. <paramref name="weights"/>, a type of <see cref="ElementTypes.Quantizable"/>
    /// (Q8_0, Q4_K, ...), quantizes the model's matrices as they are loaded (norms stay as stored;
    /// <see cref="ModelWeights.Unquantized"/> lists any matrix whose rows are not whole blocks). <paramref name="sequences"/> is how many
    /// generations may run at once (KV cache slots; a server's parallel requests). <paramref name="loaded"/>
    /// is told (blocks loaded, blocks) as the model's transformer blocks reach the device. <paramref name="threads"/>
    /// is the <c>cpu</c> device's threads (0: one per core; see <see cref="Devices.Create"/>).</summary>
    public static InferenceSession Open(string modelPath, string deviceName = "auto", string? tokenizerPath = null, int? context = null, ElementType? weights = null,
        int sequences = 1, Action<int, int>? loaded = null, int threads = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(deviceName);
        ArgumentOutOfRangeException.ThrowIfNegative(threads);
        return Open(modelPath, () => Devices.Create(deviceName, threads), tokenizerPath, context, weights, sequences, loaded);
    }

    /// <summary>Opens a model on a device the caller creates (a wrapped or instrumented one); the
    /// session owns and disposes it, also when opening fails.</summary>
    public static InferenceSession Open(string modelPath, Func<ComputeDevice> createDevice, string? tokenizerPath = null, int? context = null, ElementType? weights = null,
        int sequences = 1, Action<int, int>? loaded = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sequences);
        ArgumentException.ThrowIfNullOrEmpty(modelPath);
        ArgumentNullException.ThrowIfNull(createDevice);
        if (tokenizerPath is { Length: 0 }) throw new ArgumentException("the tokenizer path is empty", nameof(tokenizerPath));
        using var checkpoint = ModelCheckpoint.Open(modelPath);
        var path = tokenizerPath ?? checkpoint.TokenizerPath;
        if (tokenizerPath is not null && !File.Exists(tokenizerPath))
            throw new ModelFormatException($"{tokenizerPath}: tokenizer file not found");
        var tokenizer = path is null ? null : ModelTokenizer.Open(path);
        // A tokenizer.json may cover fewer ids than the embedding (rows padded to a round number), never more.
        if (tokenizer is not null && (tokenizer is TextTokenizer ? tokenizer.VocabSize != checkpoint.Config.VocabSize : tokenizer.VocabSize > checkpoint.Config.VocabSize))
            throw new ModelFormatException($"{path}: tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {checkpoint.Config.VocabSize}");
        var device = createDevice();
        try
        {
            return new InferenceSession(modelPath, [.. checkpoint.Files, .. tokenizer is null ? [] : new[] { tokenizer.Path }], device, new LlamaModel(checkpoint, device, context, (tokenizer as HfTokenizer)?.EosIds, weights, sequences, loaded), tokenizer);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>Token ids of a prompt: the encoded text with the model's special tokens (BOS).</summary>
    public int[] EncodePrompt(string text)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(text);
        return (Tokenizer ?? throw new InvalidOperationException($"{ModelPath}: no tokenizer found beside the model; pass --tokenizer or --prompt-ids"))
            .EncodePrompt(text);
    }

    /// <summary>The adapter shipped beside the model, if any.</summary>
    public string? DefaultAdapterPath
    {
        get
        {
            var directory = Directory.Exists(ModelPath) ? ModelPath : Path.GetDirectoryName(Path.GetFullPath(ModelPath))!;
            var path = Path.Combine(directory, AdapterFileName);
            return File.Exists(path) ? path : null;
        }
    }

    /// <summary>The file name of the Kangaroo adapter looked for beside the model.</summary>
    public const string AdapterFileName = "kangaroo-adapter.safetensors";

    /// <summary>Where the <c>auto</c> decoder keeps measured costs between runs (null: measure every time).</summary>
    public SpeculationCostCache? CostCache { get; set; } = SpeculationCostCache.UserDefault();

    /// <summary>Creates a decoder: <c>autoregressive</c>; <c>kangaroo</c> (adapter from
    /// <paramref name="adapterPath"/> or beside the model) with gamma <paramref name="draftSteps"/> and
    /// eta <paramref name="threshold"/>; <c>early-exit</c> (the model's own head at the exit layer); or
    /// <c>auto</c>: with an adapter, a Kangaroo decoder that measures its costs (or reads them from
    /// <see cref="CostCache"/>) and speculates only where that is expected to pay, choosing gamma (at
    /// most <paramref name="draftSteps"/>) and eta itself; without one, autoregressive.</summary>
    public Decoder CreateDecoder(string name, string? adapterPath = null, int? exitLayer = null, int draftSteps = 6, float threshold = 0.6f)
    {
        adapterPath ??= DefaultAdapterPath;
        if (adapterPath is not null && !File.Exists(adapterPath)) throw new ModelFormatException($"{adapterPath}: adapter file not found");
        switch (name)
        {
            case "autoregressive":
            case "auto" when adapterPath is null:
                return new AutoregressiveDecoder(Model);
            case "kangaroo":
            case "auto":
                if (adapterPath is null)
                    throw new ArgumentException($"--decoder kangaroo needs an adapter: pass --adapter, or train one with 'kangaroo train-adapter' ({ModelPath} has no {AdapterFileName})");
                var weights = AdapterWeights.Load(adapterPath, exitLayer).CheckFits(Model.Config, Model.Fingerprint, adapterPath);
                return name == "kangaroo"
                    ? KangarooDecoders.Fixed(Model, weights, new SpeculationOptions(weights.ExitLayer, draftSteps, threshold))
                    : KangarooDecoders.Auto(Model, weights, draftSteps, CostCache);
            case "early-exit":
                var adapter = adapterPath is null ? null : AdapterWeights.Load(adapterPath);
                var layer = exitLayer ?? adapter?.ExitLayer ?? Math.Max(1, Model.Layers / 4);
                return new SelfSpeculativeDecoder(Model, new ExitNormHead(Model, adapter?.DraftVocabulary), new SpeculationOptions(layer, draftSteps, threshold), ownsHead: true);
            default:
                throw new ArgumentException($"unknown decoder '{name}' (expected autoregressive, kangaroo, early-exit or auto)");
        }
    }

    private bool _disposed;

    /// <summary>Frees the model and the device; decoders of the session refuse to generate afterwards.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Model.Dispose();
        Device.Dispose();
    }
}
