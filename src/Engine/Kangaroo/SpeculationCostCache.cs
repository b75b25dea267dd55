using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>Measured <see cref="SpeculationCosts"/> kept on disk, one small JSON file per key, so a
/// generation does not re-measure them every time. A missing, unreadable or foreign file is a miss;
/// a folder that cannot be written only means no caching.</summary>
public sealed class SpeculationCostCache(string directory)
{
    /// <summary>The folder of the JSON files.</summary>
    public string Directory { get; } = directory;

    /// <summary>KANGAROO_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache on Unix,
    /// the local application data folder on Windows), under kangaroo/costs.</summary>
    public static SpeculationCostCache UserDefault()
    {
        var root = Environment.GetEnvironmentVariable("KANGAROO_CACHE_DIR") is { Length: > 0 } explicitRoot ? explicitRoot
            : OperatingSystem.IsWindows() ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "kangaroo")
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "kangaroo");
        return new SpeculationCostCache(Path.Combine(root, "costs"));
    }

    private sealed record Entry(string Key, SpeculationCosts Costs);

    private string PathOf(string key) => Path.Combine(Directory, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..24] + ".json");

    /// <summary>The costs stored under <paramref name="key"/>, or null when there are none.</summary>
    public SpeculationCosts? Get(string key)
    {
        try
        {
            var entry = JsonSerializer.Deserialize<Entry>(File.ReadAllText(PathOf(key)));
            return entry is { Costs.VerifyMs.Length: > 0 } && entry.Key == key ? entry.Costs : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>Stores <paramref name="costs"/> under <paramref name="key"/>, replacing the file atomically; a failure to write is ignored.</summary>
    public void Put(string key, SpeculationCosts costs)
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            AtomicFile.Write(PathOf(key), stream => JsonSerializer.Serialize(stream, new Entry(key, costs)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
