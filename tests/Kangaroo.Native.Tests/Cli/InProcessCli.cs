using System.CommandLine;
using Kangaroo.Native.Cli;

namespace Kangaroo.Native.Tests.Cli;

/// <summary>The <c>kangaroo</c> command run in this process (<see cref="CliRunner"/>), for tests that need
/// many runs, where a process per run would take minutes.</summary>
internal static class InProcessCli
{
    /// <summary>Runs <paramref name="args"/> through a root command holding <paramref name="commands"/>, as
    /// <c>kangaroo</c> does, with stdout and stderr captured.</summary>
    public static (int Code, string Out, string Error) Run(Command[] commands, string[] args)
    {
        var root = new RootCommand();
        foreach (var command in commands) root.Subcommands.Add(command);
        var (stdout, stderr) = (Console.Out, Console.Error);
        using var outWriter = new StringWriter();
        using var errorWriter = new StringWriter();
        Console.SetOut(outWriter);
        Console.SetError(errorWriter);
        try
        {
            var code = CliRunner.Invoke(root, args);
            return (code, outWriter.ToString(), errorWriter.ToString());
        }
        finally
        {
            Console.SetOut(stdout);
            Console.SetError(stderr);
        }
    }
}
