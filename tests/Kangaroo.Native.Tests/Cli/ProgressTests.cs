namespace Kangaroo.Native.Tests.Cli;

/// <summary>Long steps draw their progress on stderr when it is a terminal, and nothing when it is redirected
/// (every run of <see cref="KangarooProcess"/> checks that its stderr holds no terminal control sequence).</summary>
public sealed class ProgressTests
{
    [PseudoTerminalFact]
    public void ConvertShowsTensorsAndBytesOnATerminal()
    {
        using var temp = new TempDirectory();
        var output = temp.File("stories.gguf");
        using var terminal = new PseudoTerminal(KangarooProcess.ShellCommand("convert", "--out", output, "--dtype", "q8_0"));
        var shown = terminal.ReadToEnd();
        Assert.Matches(@"\r\[#{24}\] converting: 47/47 tensors, \d+/\d+ MB\u001b\[K", shown);
        Assert.EndsWith("\r\u001b[K" + output + "\n", shown); // the line is cleared before the output is named
    }

    [Fact]
    public void ConvertIsQuietWhenRedirected()
    {
        using var temp = new TempDirectory();
        var output = temp.File("stories.gguf");
        var result = KangarooProcess.Run("convert", "--out", output, "--dtype", "q8_0");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("", result.Stderr);
        Assert.Equal(output + "\n", result.Stdout);
    }
}
