namespace Kangaroo.Native.Tests.Cli;

/// <summary><c>kangaroo chat</c> and <c>generate --chat</c> on TinyStories-656K, which has no chat template of its own,
/// with a ChatML template file: typed in a pseudo-terminal as a person would, and with stdin redirected.</summary>
public sealed class ChatCommandTests
{
    private static readonly string Model = SharedData.Path("models", "TinyStories-656K");
    private static readonly string Adapter = Path.Combine(SharedData.RepositoryRoot, "perf", "adapters", "tinystories656K-l1.safetensors");
    private static readonly string Template = Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja");
    private static readonly string[] Options = ["--model", Model, "--chat-template", Template, "--max-new-tokens", "40", "--device", "cpu", "--adapter", Adapter];

    /// <summary>The greedy reply to one user message, as <c>generate --chat</c> prints it (without its final newline).</summary>
    private static string OneTurn(string message, string? system = null)
    {
        var result = KangarooProcess.Run(["generate", "--chat", "--prompt", message, .. system is null ? [] : new[] { "--system", system }, .. Options, "--decoder", "autoregressive"]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.EndsWith("\n", result.Stdout);
        return result.Stdout[..^1];
    }

    [Fact]
    public void GenerateChatRepliesThroughTheTemplate()
    {
        var reply = OneTurn("Tell me about a cat.");
        Assert.True(reply.Length > 40, reply);
        Assert.DoesNotContain("<|im_start|>", reply); // the reply alone, not the rendered conversation
        Assert.NotEqual(reply, OneTurn("Tell me about a cat.", system: "You are a pirate."));

        var json = KangarooProcess.Run(["generate", "--chat", "--prompt", "Tell me about a cat.", "--json", .. Options, "--decoder", "kangaroo"]);
        Assert.Equal(0, json.ExitCode);
        Assert.Contains("\"decoder\":\"kangaroo\"", json.Stdout);
    }

    [Theory]
    [InlineData("autoregressive")]
    [InlineData("kangaroo")]
    [InlineData("early-exit")]
    [InlineData("auto")]
    public void RedirectedStdinTurnsResetAndStatsWithEveryDecoder(string decoder)
    {
        var first = OneTurn("Tell me about a cat.");
        var result = KangarooProcess.RunWithInput("Tell me about a cat.\n\nWhat did the dog do?\n/stats\n/reset\nTell me about a cat.\n/bogus\n",
            ["chat", .. Options, "--decoder", decoder]);

        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.StartsWith(first + "\n", result.Stdout); // no prompt is printed when stdin is not a terminal
        var afterFirst = result.Stdout[(first.Length + 1)..];
        var stats = afterFirst.IndexOf("last reply: ", StringComparison.Ordinal);
        Assert.True(stats > 1, result.Stdout); // the second reply comes before the stats
        Assert.NotEqual(first, afterFirst[..(stats - 1)]);
        Assert.Matches(@"last reply: 40 tokens, [\d.]+ tok/s.*; prompt \d+ tokens, [1-9]\d+ kept in the KV cache, \d+ computed\n", afterFirst);
        Assert.Matches(@"session: 2 replies, 80 tokens", afterFirst);
        Assert.Equal(decoder != "autoregressive", afterFirst.Contains("compression rate"));
        Assert.EndsWith("\n" + first + "\n", result.Stdout); // after /reset the first reply again
        Assert.Contains("kangaroo: conversation reset", result.Stderr);
        Assert.Contains("kangaroo: unknown command /bogus", result.Stderr);
    }

    [Fact]
    public void TheModelsOwnTemplateIsTheDefault()
    {
        // TinyStories-656K as if it were published with a chat template: its files, and a tokenizer_config.json with chat_template.
        using var directory = new TempDirectory();
        foreach (var file in Directory.GetFiles(Model).Where(f => Path.GetFileName(f) != "tokenizer_config.json"))
            File.Copy(file, directory.File(Path.GetFileName(file)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(Model, "tokenizer_config.json")))!;
        config["chat_template"] = File.ReadAllText(Template);
        File.WriteAllText(directory.File("tokenizer_config.json"), config.ToJsonString());

        var result = KangarooProcess.Run("generate", "--chat", "--model", directory.Path, "--prompt", "Tell me about a cat.", "--max-new-tokens", "40", "--device", "cpu",
            "--decoder", "autoregressive");
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(OneTurn("Tell me about a cat."), result.Stdout[..^1]);
    }

    [Fact]
    public void ChatNeedsATemplateAndNamesTheArgument()
    {
        KangarooProcess.AssertOneLineError(KangarooProcess.RunWithInput("hi\n", "chat", "--model", Model, "--device", "cpu"),
            "has no chat template", "--chat-template");
        KangarooProcess.AssertOneLineError(KangarooProcess.RunWithInput("hi\n", "chat", "--model", Model, "--device", "cpu", "--chat-template", "missing.jinja"),
            "missing.jinja", "--chat-template file not found");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--model", Model, "--prompt", "hi", "--system", "Be brief."), "--system applies to --chat only");
        KangarooProcess.AssertOneLineError(KangarooProcess.Run("generate", "--chat", "--model", Model, "--prompt-ids", "1,2", "--chat-template", Template), "--chat", "--prompt-ids");
    }

    [PseudoTerminalFact]
    public void InATerminalTwoTurnsStreamAndResetStartsOver()
    {
        var first = OneTurn("Tell me about a cat.");
        using var terminal = new PseudoTerminal(KangarooProcess.ShellCommand(["chat", .. Options, "--decoder", "kangaroo"]));
        Assert.Contains("/reset forgets the conversation", terminal.ReadUntilPrompt());

        Assert.Equal(first, terminal.Say("Tell me about a cat."));
        var second = terminal.Say("What did the dog do?");
        Assert.True(second.Length > 20, second);
        Assert.NotEqual(first, second);
        Assert.Contains("kept in the KV cache", terminal.Say("/stats"));
        Assert.Equal("kangaroo: conversation reset", terminal.Say("/reset"));
        Assert.Equal(first, terminal.Say("Tell me about a cat."));
        terminal.Type("/exit");
        Assert.Equal(0, terminal.WaitForExit());
    }

    [PseudoTerminalFact]
    public void CtrlCStopsTheReplyNotTheSession()
    {
        // ILGPU's CPU emulator decodes a few tokens a second: slow enough to interrupt a reply of 400 tokens.
        using var terminal = new PseudoTerminal(KangarooProcess.ShellCommand("chat", "--model", Model, "--chat-template", Template, "--device", "ilgpu-cpu",
            "--max-new-tokens", "400", "--decoder", "autoregressive"));
        terminal.ReadUntilPrompt();
        terminal.Type("Tell me about a cat.");
        terminal.WaitForOutput("Tell me about a cat.\r\n".Length + 1); // the echo, then the reply has begun
        terminal.Interrupt();
        Assert.Contains("kangaroo: reply stopped", terminal.ReadUntilPrompt());
        Assert.Matches(@"last reply: \d+ tokens", terminal.Say("/stats"));
        terminal.Type("/exit");
        Assert.Equal(0, terminal.WaitForExit());
    }
}
