using System.Text.Json;
using Kangaroo.Native.Templates;

namespace Kangaroo.Native.Tests.Templates;

/// <summary>Every record of ../shared/golden/chat-templates.jsonl (rendered by Hugging Face's own Jinja
/// implementation) renders byte for byte, or fails with the template's own raise_exception message.</summary>
public sealed class ChatTemplateGoldenTests
{
    private static readonly Lazy<JsonElement[]> Records = new(() => TemplateRecords.Load(SharedData.Path("golden", "chat-templates.jsonl")));

    public static TheoryData<int, string> Cases() => TemplateRecords.Cases(Records.Value);

    [Fact]
    public void TheGoldenFileHoldsEveryRecord() => Assert.Equal(84, Records.Value.Length);

    [Theory]
    [MemberData(nameof(Cases))]
    public void RendersAsHuggingFaceJinja(int index, string model)
    {
        var record = Records.Value[index];
        var template = ChatTemplate.Parse(record.GetProperty("template").GetString()!);
        string Render() => template.Render(
            record.GetProperty("messages").EnumerateArray().Cast<object?>(),
            record.GetProperty("add_generation_prompt").GetBoolean(),
            record.TryGetProperty("tools", out var tools) ? tools.EnumerateArray().Cast<object?>() : null,
            record.GetProperty("bos_token").GetString(),
            record.GetProperty("eos_token").GetString());
        if (record.TryGetProperty("error", out var error))
        {
            var raised = Assert.Throws<ChatTemplateRaisedException>(Render);
            Assert.Equal(error.GetString(), raised.Message);
        }
        else
        {
            Assert.Equal(record.GetProperty("rendered").GetString(), Render());
        }
        Assert.NotEmpty(model);
    }
}
