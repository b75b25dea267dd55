using System.CommandLine;
using Kangaroo.Native.Engine;

namespace Kangaroo.Native.Cli;

/// <summary>The options of greedy decoding or sampling, shared by generate and chat.</summary>
internal sealed class SamplingArguments
{
    public Option<float> Temperature { get; } = new("--temperature") { Description = "0 = greedy", DefaultValueFactory = _ => 0f };
    public Option<int> TopK { get; } = new("--top-k") { Description = "sample among the k most likely tokens (0 = all)" };
    public Option<float> TopP { get; } = new("--top-p") { Description = "nucleus sampling threshold", DefaultValueFactory = _ => 1f };
    public Option<ulong> Seed { get; } = new("--seed") { Description = "random seed for sampling", DefaultValueFactory = _ => 42UL };

    public void AddTo(Command command)
    {
        command.Options.Add(Temperature);
        command.Options.Add(TopK);
        command.Options.Add(TopP);
        command.Options.Add(Seed);
    }

    public SamplingOptions Create(ParseResult result) =>
        new SamplingOptions(result.GetValue(Temperature), result.GetValue(TopK), result.GetValue(TopP), result.GetValue(Seed)).Validate();
}
