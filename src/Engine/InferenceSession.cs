using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Engine;

/// <summary>A model loaded onto a device with its tokenizer: what the CLI commands and embedding
/// programs start from.</summary>
public sealed class InferenceSession : IDisposable
{
    public ComputeDevice Device { get; }
    public LlamaModel Model { get; }
    public TextTokenizer? Tokenizer { get; }
    public string ModelPath { get; }

    private InferenceSession(string modelPath, ComputeDevice device, LlamaModel model, TextTokenizer? tokenizer)
    {
        ModelPath = modelPath;
        Device = device;
        Model = model;
        Tokenizer = tokenizer;
    }

    /// <summary>Opens a model (Hugging Face directory or llama2.c .bin) on a device; the tokenizer is
    /// <paramref name="tokenizerPath"/> or the one found beside the model.</summary>
    public static InferenceSession Open(string modelPath, string deviceName = "auto", string? tokenizerPath = null)
    {
        using var checkpoint = ModelCheckpoint.Open(modelPath);
        var path = tokenizerPath ?? checkpoint.TokenizerPath;
        if (tokenizerPath is not null && !File.Exists(tokenizerPath))
            throw new ModelFormatException($"{tokenizerPath}: tokenizer file not found");
        var tokenizer = path is null ? null : TextTokenizer.Load(path);
        if (tokenizer is not null && tokenizer.VocabSize != checkpoint.Config.VocabSize)
            throw new ModelFormatException($"{path}: tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {checkpoint.Config.VocabSize}");
        var device = Devices.Create(deviceName);
        try
        {
            return new InferenceSession(modelPath, device, new LlamaModel(checkpoint, device), tokenizer);
        }
        catch
        {
            device.Dispose();
            throw;
        }
    }

    /// <summary>Token ids of a prompt: BOS, then the encoded text.</summary>
    public int[] EncodePrompt(string text) =>
        (Tokenizer ?? throw new InvalidOperationException($"{ModelPath}: no tokenizer found beside the model; pass --tokenizer or --prompt-ids"))
        .Encode(text, addBos: true);

    public Decoder CreateDecoder(string name) => name switch
    {
        "autoregressive" or "auto" => new AutoregressiveDecoder(Model),
        _ => throw new ArgumentException($"unknown decoder '{name}' (expected autoregressive, kangaroo, early-exit or auto)"),
    };

    public void Dispose()
    {
        Model.Dispose();
        Device.Dispose();
    }
}
