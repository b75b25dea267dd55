namespace Kangaroo.Native.Tests.Cli;

/// <summary><c>kangaroo template</c>: exactly the rendered text on stdout, errors as one line on stderr.</summary>
public sealed class TemplateCommandTests
{
    private const string ChatMl =
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    private const string Conversation = """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi, Zoë"}]""";

    [Fact]
    public void RendersATokenizerConfigsTemplateWithItsSpecialTokens()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("tokenizer_config.json"), JsonSerializer.Serialize(new
        {
            chat_template = "{{ bos_token }}" + ChatMl + "{{ eos_token }}",
            bos_token = new { content = "<s>", lstrip = false },
            eos_token = "</s>",
        }));
        File.WriteAllText(dir.File("messages.json"), Conversation);
        var result = KangarooProcess.Run("template", "--template", dir.File("tokenizer_config.json"), "--messages", dir.File("messages.json"), "--add-generation-prompt");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi, Zoë<|im_end|>\n<|im_start|>assistant\n</s>", result.Stdout);
        Assert.Equal("", result.Stderr);
    }

    [Fact]
    public void TheDefaultOfAListOfNamedTemplatesIsUsedAndTokensCanBeOverridden()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("tokenizer_config.json"), JsonSerializer.Serialize(new
        {
            chat_template = new[] { new { name = "tool_use", template = "tools" }, new { name = "default", template = "[{{ bos_token }}|{{ eos_token }}]{{ messages | length }}" } },
            bos_token = "<s>",
            eos_token = "</s>",
        }));
        File.WriteAllText(dir.File("messages.json"), Conversation);
        var result = KangarooProcess.Run("template", "--template", dir.File("tokenizer_config.json"), "--messages", dir.File("messages.json"), "--bos-token", "<B>");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("[<B>|</s>]2", result.Stdout);
    }

    /// <summary>A golden record with tools, rendered from files through the command, matches byte for byte.</summary>
    [Fact]
    public void ATemplateFileWithToolsRendersTheGolden()
    {
        var record = File.ReadLines(SharedData.Path("golden", "chat-templates.jsonl"))
            .Select(line => JsonDocument.Parse(line).RootElement)
            .First(r => r.TryGetProperty("tools", out _) && r.TryGetProperty("rendered", out _) && r.GetProperty("add_generation_prompt").GetBoolean());
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("template.jinja"), record.GetProperty("template").GetString());
        File.WriteAllText(dir.File("messages.json"), record.GetProperty("messages").GetRawText());
        File.WriteAllText(dir.File("tools.json"), record.GetProperty("tools").GetRawText());
        var result = KangarooProcess.Run("template", "--template", dir.File("template.jinja"), "--messages", dir.File("messages.json"), "--tools", dir.File("tools.json"),
            "--add-generation-prompt", "--bos-token", record.GetProperty("bos_token").GetString()!, "--eos-token", record.GetProperty("eos_token").GetString()!);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal(record.GetProperty("rendered").GetString(), result.Stdout);
    }

    [Fact]
    public void RaiseExceptionIsOneLineCarryingTheTemplatesMessage()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("template.jinja"), "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with the user') }}{% endif %}");
        File.WriteAllText(dir.File("messages.json"), Conversation);
        var result = KangarooProcess.Run("template", "--template", dir.File("template.jinja"), "--messages", dir.File("messages.json"));
        KangarooProcess.AssertOneLineError(result, "Conversation must start with the user");
        Assert.Equal("", result.Stdout);
    }

    [Theory]
    [InlineData("line one\n{% filter upper %}x{% endfilter %}", "chat template line 2: unsupported statement '{% filter %}'")]
    [InlineData("{{ messages | wordwrap }}", "unsupported filter 'wordwrap'")]
    public void ATemplateOutsideTheSubsetIsOneLineNamingTheConstruct(string template, string fragment)
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("template.jinja"), template);
        File.WriteAllText(dir.File("messages.json"), Conversation);
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("template", "--template", dir.File("template.jinja"), "--messages", dir.File("messages.json")), fragment);
    }

    [Fact]
    public void BadInputFilesAreOneLineErrors()
    {
        using var dir = new TempDirectory();
        File.WriteAllText(dir.File("template.jinja"), ChatMl);
        File.WriteAllText(dir.File("object.json"), """{"role": "user"}""");
        File.WriteAllText(dir.File("config.json"), """{"bos_token": "<s>"}""");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("template", "--template", dir.File("template.jinja"), "--messages", dir.File("object.json")), "must hold a JSON list");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("template", "--template", dir.File("config.json"), "--messages", dir.File("object.json")), "without a \"chat_template\"");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("template", "--template", dir.File("template.jinja")), "--messages");
    }
}
