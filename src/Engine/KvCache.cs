using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine;

/// <summary>
/// Preallocated key and value caches of a stack of attention layers, [positions, kvHeads * headDim]
/// each. Every layer tracks how many positions it holds; a block written at position p must start at
/// or before that length (no holes), and <see cref="Truncate"/> forgets positions from a point on,
/// which is how speculative decoding rolls back rejected drafts.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly DeviceTensor[] _keys;
    private readonly DeviceTensor[] _values;
    private readonly int[] _lengths;

    public int Layers { get; }
    public int Positions { get; }
    public int KvDim { get; }

    public KvCache(ComputeDevice device, int layers, int positions, int kvDim)
    {
        Layers = layers;
        Positions = positions;
        KvDim = kvDim;
        _keys = new DeviceTensor[layers];
        _values = new DeviceTensor[layers];
        _lengths = new int[layers];
        for (var l = 0; l < layers; l++)
        {
            _keys[l] = device.Allocate(positions * kvDim);
            _values[l] = device.Allocate(positions * kvDim);
        }
    }

    public DeviceTensor Keys(int layer) => _keys[layer];
    public DeviceTensor Values(int layer) => _values[layer];

    /// <summary>Number of positions layer <paramref name="layer"/> holds.</summary>
    public int Length(int layer) => _lengths[layer];

    /// <summary>Changes whenever positions are written: a decoder that left positions in the cache can
    /// tell whether anything wrote over them since.</summary>
    public long Version { get; private set; }

    /// <summary>Number of positions every layer holds.</summary>
    public int CommonLength => _lengths.Min();

    /// <summary>Claims positions [start, start + rows) of a layer for writing and returns the key and value slices.</summary>
    public (DeviceTensor Keys, DeviceTensor Values) Append(int layer, int start, int rows)
    {
        if (start > _lengths[layer])
            throw new InvalidOperationException($"layer {layer} holds {_lengths[layer]} positions; cannot write at position {start}");
        if (start + rows > Positions)
            throw new InvalidOperationException($"positions {start}..{start + rows - 1} exceed the context of {Positions}");
        _lengths[layer] = start + rows;
        Version++;
        return (_keys[layer].Slice(start * KvDim, rows * KvDim), _values[layer].Slice(start * KvDim, rows * KvDim));
    }

    /// <summary>Forgets every position at or after <paramref name="length"/> in every layer.</summary>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        for (var l = 0; l < Layers; l++) _lengths[l] = Math.Min(_lengths[l], length);
    }

    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
