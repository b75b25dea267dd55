using System.Diagnostics;
using System.Text.Json;

namespace Kangaroo.Native.Tests.Cli;

/// <summary>Runs the real <c>kangaroo</c> executable (built beside the tests) as a user would.</summary>
public static class KangarooProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    private static readonly string CacheDirectory = Path.Combine(Path.GetTempPath(), "kangaroo-test-cache-" + Environment.ProcessId);

    public static Result Run(params string[] args) => RunWithInput(null, args);

    /// <summary>Runs with <paramref name="stdin"/> as standard input (null: the test's own).</summary>
    public static Result RunWithInput(string? stdin, params string[] args)
    {
        var start = Start("dotnet", [Path.Combine(AppContext.BaseDirectory, "kangaroo.dll"), .. args]);
        start.RedirectStandardInput = stdin is not null;
        using var process = Process.Start(start)!;
        if (stdin is not null)
        {
            process.StandardInput.Write(stdin);
            process.StandardInput.Close();
        }
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"kangaroo {string.Join(' ', args)} did not finish in 5 minutes");
        }
        // Progress is drawn only on a terminal: redirected, stderr holds finished lines only.
        Assert.DoesNotContain("\u001b[", stderr.Result);
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>How a test starts a program: output redirected, and the measured costs of the auto decoder kept
    /// out of the user's cache.</summary>
    public static ProcessStartInfo Start(string program, IEnumerable<string> args)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["KANGAROO_CACHE_DIR"] = CacheDirectory;
        foreach (var arg in args) start.ArgumentList.Add(arg);
        return start;
    }

    /// <summary>The command line that runs <c>kangaroo</c> with <paramref name="args"/>, quoted for a POSIX shell.</summary>
    public static string ShellCommand(params string[] args) =>
        string.Join(' ', new[] { "dotnet", Path.Combine(AppContext.BaseDirectory, "kangaroo.dll") }.Concat(args).Select(a => "'" + a.Replace("'", "'\\''") + "'"));

    /// <summary>An array of ids from a successful <c>generate --json</c> (prompt_ids, generated_ids, ...).</summary>
    public static int[] JsonIds(Result result, string name)
    {
        Assert.True(result.ExitCode == 0, $"exit code {result.ExitCode}: {result.Stderr}");
        return JsonDocument.Parse(result.Stdout).RootElement.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
    }

    /// <summary>Asserts a failed run that printed exactly one line to stderr containing every fragment.</summary>
    public static void AssertOneLineError(Result result, params string[] fragments)
    {
        Assert.NotEqual(0, result.ExitCode);
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{result.Stderr}");
        Assert.StartsWith("kangaroo: ", lines[0]);
        foreach (var fragment in fragments) Assert.Contains(fragment, lines[0]);
    }
}
