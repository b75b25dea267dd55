using System.Diagnostics;
using System.Globalization;

namespace Kangaroo.Native.Cli;

/// <summary>
/// The progress of a long step (a conversion, loading a model, training, a benchmark run) as one line on
/// stderr: a bar, what is done and the time left, redrawn in place at most ten times a second. Only on a
/// terminal: when stderr is redirected to a file or a pipe nothing is drawn, so logs and scripts see only
/// the finished lines (<see cref="Finish"/>).
/// </summary>
internal sealed class ProgressLine
{
    private const int BarWidth = 24;
    private readonly Stopwatch _started = Stopwatch.StartNew();
    private readonly Stopwatch _sinceDrawn = new();
    private readonly bool _live = !Console.IsErrorRedirected;
    private bool _drawn;

    /// <summary>Draws <paramref name="done"/> of <paramref name="total"/> with <paramref name="text"/> and the time
    /// left at the rate so far; skipped within 0.1 s of the last drawing unless <paramref name="force"/>.</summary>
    public void Show(double done, double total, string text, bool force = false)
    {
        if (!_live || (_drawn && !force && _sinceDrawn.ElapsedMilliseconds < 100)) return;
        _sinceDrawn.Restart();
        var fraction = total <= 0 ? 1 : Math.Clamp(done / total, 0, 1);
        var filled = (int)(BarWidth * fraction);
        var left = fraction is > 0 and < 1 && _started.Elapsed.TotalSeconds >= 1 ? $", {Duration(_started.Elapsed.TotalSeconds * (1 - fraction) / fraction)} left" : "";
        var line = $"[{new string('#', filled)}{new string('-', BarWidth - filled)}] {text}{left}";
        Console.Error.Write($"\r{Fit(line)}\u001b[K");
        _drawn = true;
    }

    /// <summary>Clears the line, then writes <paramref name="text"/> (when not empty) as a finished line, terminal or not.</summary>
    public void Finish(string text = "")
    {
        if (_drawn) Console.Error.Write("\r\u001b[K");
        _drawn = false;
        if (text.Length > 0) Console.Error.WriteLine($"kangaroo: {text}");
    }

    /// <summary>Megabytes, for progress texts.</summary>
    public static string Megabytes(long bytes) => (bytes / 1e6).ToString("F0", CultureInfo.InvariantCulture);

    private static string Duration(double seconds) =>
        seconds < 60 ? $"{seconds:F0} s"
        : seconds < 3600 ? $"{(int)(seconds / 60)} min {(int)(seconds % 60):D2} s"
        : $"{(int)(seconds / 3600)} h {(int)(seconds % 3600 / 60):D2} min";

    /// <summary>A line longer than the terminal would wrap, and \r would then redraw only its last part.</summary>
    private static string Fit(string line)
    {
        int width;
        try
        {
            width = Console.WindowWidth;
        }
        catch (Exception e) when (e is IOException or PlatformNotSupportedException)
        {
            width = 0;
        }
        return width > 20 && line.Length >= width ? line[..(width - 1)] : line;
    }
}
