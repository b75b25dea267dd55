using Kangaroo.Native.Kernels;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Cli;

/// <summary>The options that choose a model and the device it runs on, shared by generate, bench and
/// train-adapter; <c>--tokenizer</c> only where a command encodes text the user chooses.</summary>
internal sealed class ModelArguments(bool withTokenizer)
{
    public Option<string> Model { get; } = new("--model") { Description = "Hugging Face model directory or llama2.c .bin (default: the embedded stories260K)" };
    public Option<string> Tokenizer { get; } = new("--tokenizer") { Description = "tokenizer.json, tokenizer.model or llama2.c tokenizer .bin (default: the one beside the model)" };
    public Option<string> Device { get; } = new("--device") { Description = "auto|cuda|opencl|cpu|ilgpu-cpu", DefaultValueFactory = _ => "auto" };
    public Option<int?> Threads { get; } = new("--threads") { Description = "threads of the cpu device (default: one per core)" };
    public Option<int?> Context { get; } = new("--context") { Description = "positions of the KV cache: longest prompt + generated tokens (default: the model's max_position_embeddings, as far as device memory allows)" };
    public Option<string> Weights { get; } = new Option<string>("--weights") { Description = $"{string.Join("|", QuantizingTypes)}: quantize the model's matrices when loading, llama.cpp's way (norms stay as stored; default: weights as stored)" }
        .AcceptOnlyFromAmong(QuantizingTypes);

    /// <summary>The block types the loader can quantize to, as the CLI spells them.</summary>
    private static string[] QuantizingTypes => [.. ElementTypes.Quantizable.Select(t => t.Name)];

    public void AddTo(Command command)
    {
        command.Options.Add(Model);
        if (withTokenizer) command.Options.Add(Tokenizer);
        command.Options.Add(Device);
        command.Options.Add(Threads);
        command.Options.Add(Context);
        command.Options.Add(Weights);
    }

    /// <summary>Opens the session, for <paramref name="sequences"/> sequences at once, with its progress on a terminal;
    /// with --weights, says on stderr which matrices could not be quantized.</summary>
    public InferenceSession Open(ParseResult result, int sequences = 1)
    {
        var weights = result.GetValue(Weights) is { } name ? ElementTypes.Parse(name) : (ElementType?)null;
        if (result.GetValue(Threads) is < 1 and var threads) throw new ArgumentException($"--threads {threads} must be >= 1");
        var progress = new ProgressLine();
        InferenceSession session;
        try
        {
            session = InferenceSession.Open(result.GetValue(Model) ?? CliRunner.DefaultModel, result.GetValue(Device)!,
                withTokenizer ? result.GetValue(Tokenizer) : null, result.GetValue(Context), weights, sequences,
                (done, blocks) => progress.Show(done, blocks, $"loading: {done}/{blocks} blocks", force: done == blocks), result.GetValue(Threads) ?? 0);
        }
        finally
        {
            progress.Finish();
        }
        if (session.Model.Weights.Unquantized is { Count: > 0 } kept)
            Console.Error.WriteLine($"note: {kept.Count} matrices keep their stored type, their rows are not whole blocks of {weights!.Value.BlockLength()}: " +
                $"{string.Join(", ", kept.Take(3))}{(kept.Count > 3 ? ", ..." : "")}");
        return session;
    }
}
