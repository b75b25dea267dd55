using System.Text.Json;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Cli;

/// <summary><c>--prompt-file</c> of bench and train-adapter: one prompt per non-blank line, either plain
/// text or a JSON object with <c>"text"</c> or <c>"turns"</c> (the first turn is the prompt).</summary>
public static class PromptFile
{
    public static List<string> Read(string path)
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

    private static string Parse(string path, string line, int number)
    {
        if (!line.TrimStart().StartsWith('{')) return line;
        try
        {
            using var doc = JsonText.Parse(line);
            var root = doc.RootElement;
            if (root.TryGetProperty("turns", out var turns) && turns.ValueKind == JsonValueKind.Array && turns.GetArrayLength() > 0
                && turns[0].ValueKind == JsonValueKind.String) return turns[0].GetString()!;
            if (root.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String) return text.GetString()!;
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"--prompt-file {path}: line {number} is not valid JSON ({ErrorText.Json(e)})");
        }
        throw new ArgumentException($"--prompt-file {path}: line {number} has neither a \"turns\" list of strings nor a \"text\" string");
    }
}
