using System.IO.MemoryMappedFiles;

namespace Kangaroo.Native.Loader;

/// <summary>A whole file mapped read-only into memory: the model formats read headers and tensors
/// through it, so weights are borrowed from the page cache rather than copied.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private bool _disposed;

    /// <summary>The first byte of the file; valid until the map is disposed.</summary>
    public byte* Start { get; }

    public long Length { get; }

    /// <summary>Maps <paramref name="path"/>, which must not be empty (callers check the length first).</summary>
    public MappedFile(string path, long length)
    {
        Length = length;
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* start = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
        Start = start + _view.PointerOffset;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
