using System.Text.Json;

namespace Kangaroo.Native.Tests.Templates;

/// <summary>The records of a JSONL file of rendered templates, and theory cases over them: each case is
/// a record's index, named by its <c>model</c> so that a failure says which template.</summary>
public static class TemplateRecords
{
    public static JsonElement[] Load(string path) =>
        File.ReadLines(path)
            .Where(line => line.Length > 0)
            .Select(line => JsonDocument.Parse(line).RootElement)
            .ToArray();

    public static TheoryData<int, string> Cases(JsonElement[] records)
    {
        var data = new TheoryData<int, string>();
        for (var i = 0; i < records.Length; i++) data.Add(i, records[i].GetProperty("model").GetString()!);
        return data;
    }
}
