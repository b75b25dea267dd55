using System.CommandLine;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Cli;

/// <summary>Runs the command line: a usage or input error prints one line to stderr and exits non-zero.</summary>
public static class CliRunner
{
    public const int ErrorExitCode = 1;

    /// <summary>The embedded default model, copied beside the executable.</summary>
    public static string DefaultModel => Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");

    public static int Invoke(RootCommand root, string[] args)
    {
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            Console.Error.WriteLine($"kangaroo: {parsed.Errors[0].Message}");
            return ErrorExitCode;
        }
        return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    }

    /// <summary>Runs a command body, turning the errors a user can cause into one line on stderr.</summary>
    public static int Guard(Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is ModelFormatException or ArgumentException or InvalidOperationException or IOException or UnauthorizedAccessException or FormatException)
        {
            Console.Out.Flush();
            Console.Error.WriteLine($"kangaroo: {e.Message.ReplaceLineEndings(" ")}");
            return ErrorExitCode;
        }
    }
}
