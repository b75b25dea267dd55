using System.Diagnostics;
using System.Text;

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
        using var terminal = new Terminal(KangarooProcess.ShellCommand(["chat", .. Options, "--decoder", "kangaroo"]));
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
        using var terminal = new Terminal(KangarooProcess.ShellCommand("chat", "--model", Model, "--chat-template", Template, "--device", "ilgpu-cpu",
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

    /// <summary>A test that needs util-linux's <c>script</c> to run a program in a pseudo-terminal.</summary>
    private sealed class PseudoTerminalFactAttribute : FactAttribute
    {
        public PseudoTerminalFactAttribute()
        {
            if (OperatingSystem.IsWindows() || !File.Exists("/usr/bin/script")) Skip = "needs util-linux 'script' (/usr/bin/script) for a pseudo-terminal";
        }
    }

    /// <summary>A program in a pseudo-terminal (through <c>script</c>): lines typed into it are echoed as a terminal
    /// does, and its output is read as it comes.</summary>
    private sealed class Terminal : IDisposable
    {
        private const string Prompt = "> ";
        private readonly Process _process;
        private readonly StringBuilder _output = new();
        private readonly Task _reader;
        private int _read;

        public Terminal(string command)
        {
            // exec: the program replaces the shell script starts ($SHELL, or /bin/sh when unset), as a program started
            // from an interactive shell leads its own process group; a dash left waiting would die of the Ctrl-C itself.
            // stty -echo: .NET's line editor echoes what it reads, and a line typed before it reads would be echoed
            // by the terminal too.
            var start = KangarooProcess.Start("script", ["-q", "-e", "-c", "stty -echo; exec " + command, "/dev/null"]);
            start.RedirectStandardInput = true;
            _process = Process.Start(start)!;
            _reader = Task.Run(async () =>
            {
                var buffer = new char[256];
                int n;
                while ((n = await _process.StandardOutput.ReadAsync(buffer)) > 0)
                    lock (_output) _output.Append(buffer, 0, n);
            });
        }

        public void Type(string line)
        {
            _process.StandardInput.Write(line + "\n");
            _process.StandardInput.Flush();
        }

        /// <summary>Ctrl-C, as typed: the terminal sends SIGINT to the program.</summary>
        public void Interrupt()
        {
            _process.StandardInput.Write('\u0003');
            _process.StandardInput.Flush();
        }

        /// <summary>Waits until the program has shown <paramref name="characters"/> more characters since the last prompt.</summary>
        public void WaitForOutput(int characters)
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                lock (_output)
                    if (_output.Length - _read >= characters) return;
                Thread.Sleep(20);
            }
            lock (_output) throw new TimeoutException($"no output; the terminal showed:\n{_output}");
        }

        /// <summary>Types a line and returns what the program printed before its next prompt, without the echoed line.</summary>
        public string Say(string line)
        {
            Type(line);
            var shown = ReadUntilPrompt();
            Assert.StartsWith(line + "\n", shown);
            return shown[(line.Length + 1)..].TrimEnd('\n');
        }

        /// <summary>The output up to the next prompt at the start of a line, newlines as "\n".</summary>
        public string ReadUntilPrompt()
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < TimeSpan.FromMinutes(2))
            {
                lock (_output)
                {
                    var text = _output.ToString(_read, _output.Length - _read);
                    var end = text.IndexOf("\n" + Prompt, StringComparison.Ordinal);
                    if (end >= 0)
                    {
                        _read += end + 1 + Prompt.Length;
                        return text[..(end + 1)].Replace("\r\n", "\n");
                    }
                }
                if (_process.HasExited && _reader.IsCompleted) break;
                Thread.Sleep(20);
            }
            lock (_output) throw new TimeoutException($"no prompt; the terminal showed:\n{_output}");
        }

        public int WaitForExit()
        {
            Assert.True(_process.WaitForExit(TimeSpan.FromMinutes(1)), "the chat did not end");
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
            _process.Dispose();
        }
    }
}
