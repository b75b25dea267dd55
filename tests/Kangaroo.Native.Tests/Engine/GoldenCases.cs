namespace Kangaroo.Native.Tests.Engine;

/// <summary>One record of ../shared/golden/stories260K-greedy.jsonl: llama2.c run.c's greedy output.</summary>
public sealed record GoldenCase(string Prompt, int[] PromptIds, int[] GeneratedIds, int Steps, string Stop)
{
    /// <summary>run.c's -n counts positions fed to the model; the token sampled at the last one is printed too.</summary>
    public int MaxNewTokens => Steps - PromptIds.Length + 1;

    public override string ToString() => $"\"{Prompt}\"";

    public static IReadOnlyList<GoldenCase> All { get; } = File.ReadLines(SharedData.Path("golden", "stories260K-greedy.jsonl"))
        .Where(line => line.Trim().Length > 0)
        .Select(line =>
        {
            var json = JsonDocument.Parse(line).RootElement;
            int[] Ids(string name) => json.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
            return new GoldenCase(json.GetProperty("prompt").GetString()!, Ids("prompt_ids"), Ids("generated_ids"),
                json.GetProperty("steps").GetInt32(), json.GetProperty("stop").GetString()!);
        })
        .ToList();

    public static IEnumerable<object[]> Indices => Enumerable.Range(0, All.Count).Select(i => new object[] { i });
}
