namespace Kangaroo.Native.Tests;

/// <summary>Locates the shared models and golden data: the <c>shared</c> directory beside the repository
/// root (or inside it), found by walking up from the test assembly.</summary>
public static class SharedData
{
    private static readonly Lazy<string> Root = new(Find);

    /// <summary>A path under the shared directory, e.g. <c>Path("models", "stories260K", "tok512.bin")</c>.</summary>
    public static string Path(params string[] parts) => System.IO.Path.Combine([Root.Value, .. parts]);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            foreach (var candidate in new[] { System.IO.Path.Combine(dir.FullName, "shared"), System.IO.Path.Combine(dir.FullName, "..", "shared") })
                if (Directory.Exists(System.IO.Path.Combine(candidate, "golden")))
                    return System.IO.Path.GetFullPath(candidate);
        }
        throw new DirectoryNotFoundException($"no shared/golden directory above {AppContext.BaseDirectory}");
    }
}
