namespace Kangaroo.Native.Loader;

/// <summary>Writes a file beside its destination under a temporary name and renames it into place, so
/// an interrupted write never leaves a half-written file (and never replaces the old one with one).</summary>
public static class AtomicFile
{
    /// <summary>A fresh name beside <paramref name="path"/> for writing before the rename: unique, so
    /// that no file of the user's (a "model.safetensors.tmp" of their own) is ever overwritten.</summary>
    public static string TemporaryBeside(string path) => $"{path}.{Guid.NewGuid():N}.tmp";

    /// <summary>Runs <paramref name="write"/> on a new temporary file beside <paramref name="path"/>, then
    /// renames it to <paramref name="path"/>; on any error the temporary file is deleted, and I/O errors
    /// name <paramref name="path"/>.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var full = Path.GetFullPath(path);
        var temporary = TemporaryBeside(full);
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write)) write(stream);
            File.Move(temporary, full, overwrite: true);
        }
        catch (Exception e)
        {
            try
            {
                File.Delete(temporary);
            }
            catch (Exception cleanup) when (cleanup is IOException or UnauthorizedAccessException)
            {
                // The original error is the one to report.
            }
            if (e is IOException or UnauthorizedAccessException) throw new IOException($"{path}: cannot write ({e.Message})", e);
            throw;
        }
    }
}
