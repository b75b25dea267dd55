namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>The decoders an adapter makes: Kangaroo with fixed settings, and <c>auto</c>, which speculates
/// only where the costs measured on this device and the adapter's acceptance statistics say it pays.</summary>
public static class KangarooDecoders
{
    /// <summary>Kangaroo drafting with the adapter at its exit layer in every round, as <paramref name="options"/> say.</summary>
    public static SelfSpeculativeDecoder Fixed(LlamaModel model, AdapterWeights weights, SpeculationOptions options)
    {
        var head = new AdapterHead(model, weights);
        return new SelfSpeculativeDecoder(model, head, options.Validate(model.Layers), Acceptance(weights), ownsHead: true);
    }

    /// <summary>The <c>auto</c> decoder: what a round's parts cost on this device (from <paramref name="cache"/>
    /// when measured before, else measured now) and the adapter's acceptance give the expected tokens/s of
    /// plain decoding and of each (gamma, eta) with gamma up to <paramref name="maxDrafts"/>; a
    /// <see cref="SpeculationController"/> follows that plan and watches what it realises.</summary>
    public static SelfSpeculativeDecoder Auto(LlamaModel model, AdapterWeights weights, int maxDrafts, SpeculationCostCache? cache)
    {
        var options = new SpeculationOptions(weights.ExitLayer, maxDrafts).Validate(model.Layers);
        var head = new AdapterHead(model, weights);
        try
        {
            var costs = SpeculationCosts.ForDecoder(model, head, weights.ExitLayer, maxDrafts, cache);
            return new SelfSpeculativeDecoder(model, head, options, Acceptance(weights), new SpeculationController(costs, maxDrafts), "auto", ownsHead: true);
        }
        catch
        {
            head.Dispose();
            throw;
        }
    }

    /// <summary>The adapter's held-out statistics, as the running estimate's starting point.</summary>
    private static AcceptanceStatistics? Acceptance(AdapterWeights weights) => weights.Acceptance?.Clone(AcceptanceStatistics.RunningMemory);
}
