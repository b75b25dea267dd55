using System.CommandLine;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo bench</c>: prefill and decode speed of the decoders on one device.</summary>
public static class BenchCommand
{
    public static Command Create()
    {
        var command = new Command("bench", "Measure prefill and decode tokens per second");
        command.SetAction(_ => CliRunner.Guard(() => throw new InvalidOperationException("bench is not available yet")));
        return command;
    }
}
