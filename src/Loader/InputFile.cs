using System.Runtime.InteropServices;

namespace Kangaroo.Native.Loader;

/// <summary>What a path names, following symbolic links.</summary>
public enum FileKind
{
    /// <summary>Nothing is there (or a symbolic link leads nowhere).</summary>
    Missing,

    /// <summary>A regular file.</summary>
    Regular,

    /// <summary>A directory.</summary>
    Directory,

    /// <summary>Anything else: a FIFO, socket or device.</summary>
    Other,
}

/// <summary>
/// The one check every file the engine reads goes through before it is opened: it must be a regular
/// file. A FIFO would block the open forever and a device would never end; an output path that names
/// one must not be replaced by a regular file either.
/// </summary>
public static partial class InputFile
{
    /// <summary>Throws a <see cref="ModelFormatException"/> naming <paramref name="path"/> and
    /// <paramref name="what"/> ("tokenizer file", ...) unless it is a regular file.</summary>
    public static void Require(string path, string what)
    {
        switch (KindOf(path))
        {
            case FileKind.Missing: throw new ModelFormatException($"{path}: {what} not found");
            case FileKind.Directory: throw new ModelFormatException($"{path}: {what} is a directory, not a file");
            case FileKind.Other: throw new ModelFormatException($"{path}: {what} is not a regular file (a FIFO, socket or device?)");
        }
    }

    /// <summary>Runs <paramref name="read"/>, which reads <paramref name="path"/>; an I/O or permission
    /// error becomes a <see cref="ModelFormatException"/> naming the path ("cannot read").</summary>
    public static T Reading<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read ({e.Message})");
        }
    }

    /// <summary>Parses a JSON file's bytes, refusing what System.Text.Json would only notice later
    /// (text that is not UTF-8, or escapes of lone surrogates, throw InvalidOperationException from the first string read) and, where
    /// asked, duplicate keys; every failure is a <see cref="ModelFormatException"/> naming the file.</summary>
    public static System.Text.Json.JsonDocument ParseJson(string path, byte[] bytes, bool allowDuplicates = false)
    {
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new ModelFormatException($"{path}: not valid UTF-8 text");
        try
        {
            return JsonText.Parse(bytes, new System.Text.Json.JsonDocumentOptions { AllowDuplicateProperties = allowDuplicates });
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({ErrorText.Json(e)})");
        }
    }

    /// <summary>What <paramref name="path"/> is. The file type comes from stat(2) through the .NET
    /// runtime's own native library (no public API exposes it); should that be unavailable, a file
    /// that reports no size is taken as not regular, which devices and FIFOs do.</summary>
    public static FileKind KindOf(string path)
    {
        if (string.IsNullOrEmpty(path) || path.Contains('\0')) return FileKind.Missing;
        if (Directory.Exists(path)) return FileKind.Directory;
        if (!File.Exists(path)) return FileKind.Missing;
        if (OperatingSystem.IsWindows()) return FileKind.Regular;
        try
        {
            if (Stat(path, out var status) == 0) return (status.Mode & TypeMask) == RegularType ? FileKind.Regular : FileKind.Other;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // fall through to the size test
        }
        return new FileInfo(path).Length > 0 ? FileKind.Regular : FileKind.Other;
    }

    private const int TypeMask = 0xF000;   // S_IFMT
    private const int RegularType = 0x8000; // S_IFREG

    /// <summary>The start of the runtime's FileStatus (flags, then st_mode), padded well past its full size.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct FileStatus
    {
        public int Flags;
        public int Mode;
        private fixed byte _rest[256];
    }

    [LibraryImport("libSystem.Native", EntryPoint = "SystemNative_Stat", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Stat(string path, out FileStatus status);
}
