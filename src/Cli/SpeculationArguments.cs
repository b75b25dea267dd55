using System.CommandLine;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;

namespace Kangaroo.Native.Cli;

/// <summary>The options that choose and tune a self-speculative decoder, shared by generate, chat and bench
/// (which compares the decoders of its own <c>--decoders</c> instead of taking <c>--decoder</c>).</summary>
internal sealed class SpeculationArguments(bool withDecoder)
{
    public Option<string> DecoderName { get; } = new("--decoder") { Description = "autoregressive|kangaroo|early-exit|auto", DefaultValueFactory = _ => "auto" };
    public Option<string> Adapter { get; } = new("--adapter") { Description = $"Kangaroo adapter (.safetensors; default: {InferenceSession.AdapterFileName} beside the model)" };
    public Option<int?> ExitLayer { get; } = new("--exit-layer") { Description = "exit layer l: blocks [0, l) draft (default: the adapter's)" };
    public Option<int> DraftSteps { get; } = new("--draft-steps") { Description = "gamma: most drafts per round", DefaultValueFactory = _ => 6 };
    public Option<float> Threshold { get; } = new("--threshold") { Description = "eta: stop drafting after a draft less likely than this", DefaultValueFactory = _ => 0.6f };

    public void AddTo(Command command)
    {
        if (withDecoder) command.Options.Add(DecoderName);
        command.Options.Add(Adapter);
        command.Options.Add(ExitLayer);
        command.Options.Add(DraftSteps);
        command.Options.Add(Threshold);
    }

    /// <summary>The decoder of <c>--decoder</c>.</summary>
    public Decoder CreateDecoder(InferenceSession session, ParseResult result) => CreateDecoder(session, result.GetValue(DecoderName)!, result);

    public Decoder CreateDecoder(InferenceSession session, string name, ParseResult result) =>
        session.CreateDecoder(name, result.GetValue(Adapter), result.GetValue(ExitLayer), result.GetValue(DraftSteps), result.GetValue(Threshold));
}
