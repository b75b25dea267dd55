using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Kangaroo;
using Spectre.Console;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo bench --costs</c>: what the parts of a speculative round cost on this device,
/// and what they make of the adapter's acceptance and of the paper's 2.5 tokens per round.</summary>
internal static class CostsCommand
{
    /// <summary>The paper's compression rate (Vicuna-7B, gamma 6, eta 0.6), taken as drafted over
    /// three drafts per round for the projection.</summary>
    private const double PaperTokensPerRound = 2.5;
    private const int PaperDraftsPerRound = 3;

    /// <summary><paramref name="acceptancePath"/>: an adapter (of any model) whose held-out acceptance
    /// statistics the plan uses instead of this model's adapter's, e.g. to project what the shipped
    /// adapter's acceptance would make of a larger model's costs.</summary>
    public static void Run(InferenceSession session, string? adapterPath, int? exitLayer, int draftSteps, int? draftVocab, string? acceptancePath, bool json)
    {
        var model = session.Model;
        adapterPath ??= session.DefaultAdapterPath;
        var adapter = adapterPath is null ? null : AdapterWeights.Load(adapterPath).CheckFits(model.Config, model.Fingerprint, adapterPath);
        if (exitLayer is { } requested && adapter?.ExitLayer != requested) adapter = null; // costs do not depend on weight values
        var layer = exitLayer ?? adapter?.ExitLayer ?? Math.Max(1, model.Layers / 4);
        new SpeculationOptions(layer, draftSteps).Validate(model.Layers);
        var weights = adapter?.Clone() ?? AdapterWeights.Random(model.Config.Dim, layer, seed: 1);
        if (draftVocab is { } k)
        {
            if (k < 1 || k > model.Config.VocabSize) throw new ArgumentException($"--draft-vocab {k} must be in 1..{model.Config.VocabSize}");
            weights.DraftVocabulary = Enumerable.Range(0, k).ToArray();
        }
        using var head = new AdapterHead(model, weights);
        var costs = SpeculationCosts.Measure(model, head, layer, draftSteps);
        var (acceptance, acceptanceSource) = acceptancePath is null ? (adapter?.Acceptance, adapterPath) : (LoadAcceptance(acceptancePath), acceptancePath);
        var plan = acceptance is null ? null : SpeculationPlan.Make(costs, acceptance, draftSteps);
        var paper = PaperTokensPerRound * costs.AutoregressiveStepMs / costs.RoundMs(Math.Min(PaperDraftsPerRound, costs.MaxDrafts));
        var source = adapter is null ? "untrained adapter of the right shape" : adapterPath!;
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new
            {
                device = session.Device.Kind, device_name = session.Device.Name, model = session.ModelPath, weight_bytes = model.Weights.Bytes,
                exit_layer = layer, draft_vocab = head.Vocabulary, adapter = source, acceptance = plan is null ? null : acceptanceSource, costs, plan,
                projected_speedup_at_paper_acceptance = paper,
            }));
            return;
        }
        if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
        AnsiConsole.MarkupLine(Markup.Escape($"device {session.Device.Kind} ({session.Device.Name}); model {session.ModelPath}: {model.Weights.Bytes / 1e6:F1} MB of weights"));
        AnsiConsole.MarkupLine(Markup.Escape($"exit layer {layer} of {model.Layers}, draft vocabulary {head.Vocabulary} of {model.Config.VocabSize}, {source}"));
        var table = new Table().AddColumns("part", "ms", "x autoregressive step", "weight bytes x autoregressive");
        table.AddRow("autoregressive step", $"{costs.AutoregressiveStepMs:F4}", "1.00", "1.00");
        table.AddRow("draft step", $"{costs.DraftStepMs:F4}", $"{costs.DraftRatio:F2}", $"{costs.DraftByteRatio:F2}");
        table.AddRow("shallow pass (last token)", $"{costs.ShallowStepMs:F4}", $"{costs.ShallowStepMs / costs.AutoregressiveStepMs:F2}", "");
        for (var i = 0; i < costs.VerifyMs.Length; i++)
            table.AddRow($"verify {i + 1} row{(i == 0 ? "" : "s")}", $"{costs.VerifyMs[i]:F4}", $"{costs.VerifyRatio[i]:F2}", "");
        AnsiConsole.Write(table);
        if (plan is not null) AnsiConsole.MarkupLine(Markup.Escape($"at the held-out acceptance of {acceptanceSource}: {plan.Describe()}"));
        AnsiConsole.MarkupLine(Markup.Escape($"projected at the paper's {PaperTokensPerRound} tokens per round from {PaperDraftsPerRound} drafts: {paper:F2}x autoregressive"));
    }

    private static AcceptanceStatistics LoadAcceptance(string path) =>
        AdapterWeights.Load(path).Acceptance
            ?? throw new ArgumentException($"--acceptance-from {path}: the adapter carries no acceptance statistics (train-adapter stores them)");
}
