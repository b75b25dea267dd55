namespace Kangaroo.Native.Tests.Engine;

/// <summary>One record of a golden file of greedy generations from a float64 reference
/// (../shared/golden/tinystories656K-greedy.jsonl, gguf-greedy.jsonl): the prompt and its ids, the most
/// new tokens, the ids generated and why generation stopped; <see cref="Model"/> names the model file
/// where the golden covers several.</summary>
public sealed record GreedyGolden(string? Model, string Prompt, int[] PromptIds, int MaxNew, int[] GeneratedIds, string Stop)
{
    /// <summary>Tokens checked on ILGPU's CPU emulator, which is slow.</summary>
    private const int EmulatorTokens = 32;

    public static IReadOnlyList<GreedyGolden> Load(string fileName) => File.ReadLines(SharedData.Path("golden", fileName))
        .Where(line => line.Trim().Length > 0)
        .Select(line =>
        {
            var json = JsonDocument.Parse(line).RootElement;
            int[] Ids(string name) => json.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
            return new GreedyGolden(json.TryGetProperty("model", out var model) ? model.GetString() : null, json.GetProperty("prompt").GetString()!,
                Ids("prompt_ids"), json.GetProperty("max_new").GetInt32(), Ids("generated_ids"), json.GetProperty("stop").GetString()!);
        })
        .ToList();

    /// <summary>Generates greedily from the prompt ids on a device of <paramref name="kind"/> and checks
    /// every id and the stop reason (the first 32 ids on <c>ilgpu-cpu</c>).</summary>
    public void Check(Decoder decoder, string kind)
    {
        var count = kind == "ilgpu-cpu" ? Math.Min(EmulatorTokens, MaxNew) : MaxNew;
        var generated = decoder.Generate(PromptIds, count, new SamplingOptions()).ToArray();
        Assert.Equal(GeneratedIds.Take(count), generated);
        if (count == MaxNew) Assert.Equal(Stop == "stop_token" ? StopReason.StopToken : StopReason.Length, decoder.Stop);
    }
}
