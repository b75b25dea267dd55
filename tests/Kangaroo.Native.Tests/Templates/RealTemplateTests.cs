using System.Text.Json;
using Kangaroo.Native.Templates;

namespace Kangaroo.Native.Tests.Templates;

/// <summary>Templates of real models beyond the golden set (tool definitions, tool calls and results, recursive
/// macros with call blocks), in Templates/real-templates.jsonl with the text Python's jinja2 3.1.6 renders when
/// configured as transformers configures it (sandboxed, trim_blocks, lstrip_blocks, loop controls, its tojson).</summary>
public sealed class RealTemplateTests
{
    private static readonly Lazy<JsonElement[]> Records = new(() => TemplateRecords.Load(Path.Combine(AppContext.BaseDirectory, "Templates", "real-templates.jsonl")));

    public static TheoryData<int, string> Cases() => TemplateRecords.Cases(Records.Value);

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersAsJinja2(int index, string model)
    {
        var record = Records.Value[index];
        var variables = record.GetProperty("variables").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
        var rendered = ChatTemplate.Parse(record.GetProperty("template").GetString()!).Render(variables);
        Assert.Equal(record.GetProperty("rendered").GetString(), rendered);
        Assert.NotEmpty(model);
    }
}
