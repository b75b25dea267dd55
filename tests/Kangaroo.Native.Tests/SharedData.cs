namespace Kangaroo.Native.Tests;

/// <summary>Locates ../shared (golden outputs and models from independent implementations), which CI
/// places beside the checkout.</summary>
public static class SharedData
{
    private static readonly Lazy<string> Root = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = System.IO.Path.Combine(dir.FullName, "shared");
            if (Directory.Exists(System.IO.Path.Combine(candidate, "golden"))) return candidate;
        }
        throw new DirectoryNotFoundException($"no shared/golden folder above {AppContext.BaseDirectory}: tests need ../shared beside the checkout");
    });

    public static string Path(params string[] parts) => System.IO.Path.Combine([Root.Value, .. parts]);

    /// <summary>The embedded default model shipped in the repository.</summary>
    public static string EmbeddedModel => System.IO.Path.Combine(RepositoryRoot, "models", "stories260K", "stories260K.bin");

    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(System.IO.Path.Combine(dir.FullName, "Kangaroo.Native.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException("repository root not found");
        }
    }
}
