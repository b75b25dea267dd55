using System.Diagnostics;

namespace Kangaroo.Native.Perf;

/// <summary>Stopwatch timing: warm-up calls, then repeated samples until a time budget is spent;
/// the median sample is reported (the machines are shared, so the mean is pulled by noise).</summary>
public static class Measure
{
    /// <summary>Median seconds per call of <paramref name="action"/>. Each sample times a batch of
    /// calls sized so that one sample takes about 20 ms; <paramref name="sync"/> runs at the end of a batch.</summary>
    public static double Median(Action action, Action? sync = null, double budgetSeconds = 0.4, int minSamples = 5)
    {
        action();
        sync?.Invoke();
        var probe = Stopwatch.StartNew();
        action();
        sync?.Invoke();
        var once = Math.Max(1e-7, probe.Elapsed.TotalSeconds);
        var batch = (int)Math.Clamp(0.02 / once, 1, 100_000);
        var samples = new List<double>();
        var total = Stopwatch.StartNew();
        while (samples.Count < minSamples || (total.Elapsed.TotalSeconds < budgetSeconds && samples.Count < 200))
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < batch; i++) action();
            sync?.Invoke();
            samples.Add(clock.Elapsed.TotalSeconds / batch);
            if (once > budgetSeconds && samples.Count >= 3) break;
        }
        return MedianOf(samples);
    }

    public static double MedianOf(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN
            : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2]
            : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The 1-minute load average (other processes share the machine), or NaN where unknown.</summary>
    public static double LoadAverage()
    {
        try
        {
            return double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return double.NaN;
        }
    }

    public static string Time(double seconds) => seconds switch
    {
        < 1e-3 => $"{seconds * 1e6:F1} us",
        < 1 => $"{seconds * 1e3:F2} ms",
        _ => $"{seconds:F2} s",
    };
}
