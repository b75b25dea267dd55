using System.CommandLine;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;

namespace Kangaroo.Native.Cli;

/// <summary>The options that choose and tune a self-speculative decoder, shared by generate and bench.</summary>
public sealed class SpeculationArguments
{
    public Option<string> Adapter { get; } = new("--adapter") { Description = $"Kangaroo adapter (.safetensors; default: {InferenceSession.AdapterFileName} beside the model)" };
    public Option<int?> ExitLayer { get; } = new("--exit-layer") { Description = "exit layer l: blocks [0, l) draft (default: the adapter's)" };
    public Option<int> DraftSteps { get; } = new("--draft-steps") { Description = "gamma: most drafts per round", DefaultValueFactory = _ => 6 };
    public Option<float> Threshold { get; } = new("--threshold") { Description = "eta: stop drafting after a draft less likely than this", DefaultValueFactory = _ => 0.6f };

    public void AddTo(Command command)
    {
        command.Options.Add(Adapter);
        command.Options.Add(ExitLayer);
        command.Options.Add(DraftSteps);
        command.Options.Add(Threshold);
    }

    public Decoder CreateDecoder(InferenceSession session, string name, ParseResult result) =>
        session.CreateDecoder(name, result.GetValue(Adapter), result.GetValue(ExitLayer), result.GetValue(DraftSteps), result.GetValue(Threshold));
}
