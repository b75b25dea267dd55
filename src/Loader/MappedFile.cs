using System.IO.MemoryMappedFiles;

namespace Kangaroo.Native.Loader;

/// <summary>A whole file mapped read-only into memory: the model formats read headers and tensors
/// through it, so weights are borrowed from the page cache rather than copied. The map stays until the
/// file and every <see cref="Lease"/> of it are disposed, so weights used in place outlive the checkpoint
/// they were read from.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Lock _lock = new();
    private int _references = 1; // the file's own, given back by Dispose
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

    /// <summary>Keeps the map (and every pointer into it) valid until the returned lease is disposed,
    /// whenever the file itself is disposed.</summary>
    public IDisposable Lease()
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _references++;
        }
        return new MapLease(this);
    }

    /// <summary>Gives back the file's own reference: the map goes once no lease holds it.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        Release();
    }

    private void Release()
    {
        lock (_lock)
        {
            if (--_references > 0) return;
        }
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }

    private sealed class MapLease(MappedFile file) : IDisposable
    {
        private MappedFile? _file = file;

        public void Dispose() => Interlocked.Exchange(ref _file, null)?.Release();
    }
}
