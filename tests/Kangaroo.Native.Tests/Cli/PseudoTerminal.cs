using System.Diagnostics;
using System.Text;

namespace Kangaroo.Native.Tests.Cli;

/// <summary>A test that needs util-linux's <c>script</c> to run a program in a pseudo-terminal.</summary>
internal sealed class PseudoTerminalFactAttribute : FactAttribute
{
    public PseudoTerminalFactAttribute()
    {
        if (OperatingSystem.IsWindows() || !File.Exists("/usr/bin/script")) Skip = "needs util-linux 'script' (/usr/bin/script) for a pseudo-terminal";
    }
}

/// <summary>A program in a pseudo-terminal (through <c>script</c>): lines typed into it are echoed as a terminal
/// does, and its output is read as it comes.</summary>
internal sealed class PseudoTerminal : IDisposable
{
    private const string Prompt = "> ";
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly Task _reader;
    private int _read;

    public PseudoTerminal(string command)
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

    /// <summary>Waits for the program to end; returns everything it showed, newlines as "\n".</summary>
    public string ReadToEnd()
    {
        Assert.Equal(0, WaitForExit());
        Assert.True(_reader.Wait(TimeSpan.FromMinutes(1)), "the terminal's output did not end");
        lock (_output) return _output.ToString().Replace("\r\n", "\n");
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
