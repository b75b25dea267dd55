using System.CommandLine.Completions;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Kangaroo.Native.Cli;

/// <summary>Runs the command line: a usage or input error prints one line to stderr (escaped: see <see cref="ErrorText"/>) and exits non-zero.</summary>
internal static class CliRunner
{
    public const int ErrorExitCode = 1;

    /// <summary>The embedded default model, copied beside the executable.</summary>
    public static string DefaultModel => Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");

    /// <summary>The process entry point. stdout and stderr are written through <see cref="StandardStream"/>,
    /// so that a closed or full stdout is one error line, and a closed stderr (where nothing can be
    /// said) is exit code 1 rather than an abort.</summary>
    public static int Run(RootCommand root, string[] args)
    {
        try
        {
            Console.SetOut(StandardStream.Writer(Console.OpenStandardOutput(), "stdout"));
            Console.SetError(StandardStream.Writer(Console.OpenStandardError(), "stderr"));
            return Invoke(root, args);
        }
        catch (IOException)
        {
            return ErrorExitCode; // stderr itself failed: there is nowhere to report it
        }
    }

    public static int Invoke(RootCommand root, string[] args)
    {
        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            Console.Error.WriteLine($"kangaroo: {ErrorText.OneLine(Describe(parsed.Errors[0]))}");
            return ErrorExitCode;
        }
        return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
    }

    /// <summary>A parse error in our words: an option value that is not of the option's type, or not one of
    /// its values, names the option, the value and what was expected (System.CommandLine names .NET types,
    /// and lists values over several lines).</summary>
    private static string Describe(ParseError error)
    {
        var result = error.SymbolResult switch
        {
            OptionResult option => option,
            ArgumentResult { Parent: OptionResult option } => option,
            _ => null,
        };
        if (result is { Tokens: [var token] } && Expected(result.Option.ValueType, token.Value) is { } expected)
            return $"{result.Option.Name} '{token.Value}' is not {expected}";
        if (result is { Tokens: [var value] } && result.Option.GetCompletions(CompletionContext.Empty).Select(c => c.Label).ToArray() is { Length: > 0 } allowed
            && !allowed.Contains(value.Value))
            return $"{result.Option.Name} '{value.Value}' is not one of {string.Join(", ", allowed)}";
        return error.Message;
    }

    /// <summary>What a value of <paramref name="type"/> must look like, when <paramref name="value"/> is not one; else null.</summary>
    private static string? Expected(Type type, string value)
    {
        var invariant = CultureInfo.InvariantCulture;
        return (Nullable.GetUnderlyingType(type) ?? type) switch
        {
            var t when t == typeof(int) => int.TryParse(value, invariant, out _) ? null : $"an integer from {int.MinValue} to {int.MaxValue}",
            var t when t == typeof(ulong) => ulong.TryParse(value, invariant, out _) ? null : $"an integer from 0 to {ulong.MaxValue}",
            var t when t == typeof(float) => float.TryParse(value, invariant, out _) ? null : "a number",
            _ => null,
        };
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
            try
            {
                Console.Out.Flush();
            }
            catch (IOException)
            {
                // stdout is what failed, or it failed too: the error below is the one to report.
            }
            // .NET appends " (Parameter 'name')" to argument errors: the name of a C# parameter, not ours.
            var message = e is ArgumentException { ParamName: { } name } ? e.Message.Replace($" (Parameter '{name}')", "") : e.Message;
            // The last guard: whatever a message quotes from a file or the command line, it prints as one line.
            Console.Error.WriteLine($"kangaroo: {ErrorText.OneLine(message)}");
            return ErrorExitCode;
        }
    }
}

/// <summary>stdout or stderr: a failed write or flush becomes an <see cref="IOException"/> that says
/// which stream failed ("cannot write to stdout: No space left on device").</summary>
internal sealed class StandardStream(Stream inner, string name) : Stream
{
    public static TextWriter Writer(Stream stream, string name) =>
        TextWriter.Synchronized(new StreamWriter(new StandardStream(stream, name), new System.Text.UTF8Encoding(false)) { AutoFlush = true });

    private T Guarded<T>(Func<T> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ObjectDisposedException)
        {
            // The innermost message: a closed descriptor is "Bad file descriptor", not .NET's "Access to the path is denied."
            throw new IOException($"cannot write to {name}: {e.GetBaseException().Message}", e);
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Guarded(() =>
    {
        inner.Write(buffer, offset, count);
        return 0;
    });

    public override void Flush() => Guarded(() =>
    {
        inner.Flush();
        return 0;
    });

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
