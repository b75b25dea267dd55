using System.Text.Json;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Cli;

/// <summary>One prompt of a <c>--prompt-file</c>: text to encode, or token ids as the golden files give them
/// (<c>prompt_ids</c>) with the most new tokens the record allows (its <c>max_new</c>, or llama2.c's
/// <c>steps</c>: positions including the prompt).</summary>
internal sealed record Prompt(string? Text, int[]? Ids = null, int? MaxNewTokens = null);

/// <summary><c>--prompt-file</c> of bench and train-adapter: one prompt per non-blank line, either plain
/// text or a JSON object with <c>"prompt_ids"</c>, <c>"turns"</c> (the first turn is the prompt) or <c>"text"</c>.</summary>
internal static class PromptFile
{
    public static List<Prompt> Read(string path)
    {
        switch (InputFile.KindOf(path))
        {
            case FileKind.Missing: throw new ArgumentException($"--prompt-file {path}: file not found");
            case FileKind.Directory or FileKind.Other: throw new ArgumentException($"--prompt-file {path}: not a regular file");
        }
        var prompts = File.ReadLines(path).Select((line, index) => (Line: line, Number: index + 1)).Where(l => l.Line.Trim().Length > 0)
            .Select(l => Parse(path, l.Line, l.Number)).ToList();
        if (prompts.Count == 0) throw new ArgumentException($"--prompt-file {path}: no prompts in the file");
        return prompts;
    }

    /// <summary>The prompts of a file that must hold text (train-adapter generates from text).</summary>
    public static List<string> ReadTexts(string path) =>
        Read(path).Select((p, i) => p.Text ?? throw new ArgumentException($"--prompt-file {path}: prompt {i + 1} is token ids; give text prompts")).ToList();

    private static Prompt Parse(string path, string line, int number)
    {
        if (!line.TrimStart().StartsWith('{')) return new Prompt(line);
        try
        {
            using var doc = JsonText.Parse(line);
            var root = doc.RootElement;
            if (root.TryGetProperty("prompt_ids", out var ids) && ids.ValueKind == JsonValueKind.Array && ids.GetArrayLength() > 0
                && ids.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var id) && id >= 0))
            {
                var prompt = ids.EnumerateArray().Select(e => e.GetInt32()).ToArray();
                int? maxNew = root.TryGetProperty("max_new", out var max) && max.TryGetInt32(out var m) ? m
                    : root.TryGetProperty("steps", out var steps) && steps.TryGetInt32(out var s) ? s - prompt.Length + 1
                    : null;
                if (maxNew is < 1) throw new ArgumentException($"--prompt-file {path}: line {number} leaves no room for new tokens ({maxNew})");
                return new Prompt(null, prompt, maxNew);
            }
            if (root.TryGetProperty("turns", out var turns) && turns.ValueKind == JsonValueKind.Array && turns.GetArrayLength() > 0
                && turns[0].ValueKind == JsonValueKind.String) return new Prompt(turns[0].GetString()!);
            if (root.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String) return new Prompt(text.GetString()!);
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"--prompt-file {path}: line {number} is not valid JSON ({ErrorText.Json(e)})");
        }
        throw new ArgumentException($"--prompt-file {path}: line {number} has no \"prompt_ids\" (token ids), \"turns\" (strings) or \"text\" (a string)");
    }
}
