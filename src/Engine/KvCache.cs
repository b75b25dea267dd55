using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine;

/// <summary>
/// Preallocated key and value caches of a stack of attention layers, one pair of buffers per layer,
/// each [slots, positions, kvHeads * headDim]: a slot holds one sequence's positions. Every (slot,
/// layer) tracks how many positions it holds; a block written at position p must start at or before
/// that length (no holes), and <see cref="Truncate"/> forgets positions from a point on, which is how
/// speculative decoding rolls back rejected drafts. A sequence claims a free slot for as long as it
/// generates (<see cref="TryClaim"/>, <see cref="Release"/>).
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly DeviceTensor[] _keys;
    private readonly DeviceTensor[] _values;
    private readonly int[,] _lengths;
    private readonly long[] _versions;
    private readonly bool[] _claimed;
    private long _writes;

    /// <summary>Attention layers cached.</summary>
    public int Layers { get; }

    /// <summary>Sequences the cache holds at once.</summary>
    public int Slots { get; }

    /// <summary>Positions of each slot: the longest sequence.</summary>
    public int Positions { get; }

    /// <summary>Values per position: kv heads times head dimension.</summary>
    public int KvDim { get; }

    /// <summary>Allocates the zeroed caches on <paramref name="device"/>; the cache owns them.</summary>
    public KvCache(ComputeDevice device, int layers, int positions, int kvDim, int slots = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(slots);
        if ((long)slots * positions * kvDim > int.MaxValue)
            throw new ArgumentException($"{slots} slots of {positions} positions of {kvDim} values exceed a device buffer's {int.MaxValue} values");
        (Layers, Slots, Positions, KvDim) = (layers, slots, positions, kvDim);
        _keys = new DeviceTensor[layers];
        _values = new DeviceTensor[layers];
        _lengths = new int[slots, layers];
        _versions = new long[slots];
        _claimed = new bool[slots];
        for (var l = 0; l < layers; l++)
        {
            _keys[l] = device.Allocate(slots * positions * kvDim);
            _values[l] = device.Allocate(slots * positions * kvDim);
        }
    }

    /// <summary>The keys of every slot of a layer, [slots, positions, kvDim].</summary>
    public DeviceTensor Keys(int layer) => _keys[layer];

    /// <summary>The values of every slot of a layer, [slots, positions, kvDim].</summary>
    public DeviceTensor Values(int layer) => _values[layer];

    /// <summary>Positions slot <paramref name="slot"/> holds in layer <paramref name="layer"/>.</summary>
    public int Length(int slot, int layer) => _lengths[slot, layer];

    /// <summary>Positions every layer of the slot holds.</summary>
    public int CommonLength(int slot)
    {
        var length = int.MaxValue;
        for (var l = 0; l < Layers; l++) length = Math.Min(length, _lengths[slot, l]);
        return Layers == 0 ? 0 : length;
    }

    /// <summary>Changes whenever positions of the slot are written: a decoder that left positions in
    /// the cache can tell whether anything wrote over them since.</summary>
    public long Version(int slot) => _versions[slot];

    /// <summary>Claims positions [start, start + rows) of a slot's layer for writing.</summary>
    public void Write(int slot, int layer, int start, int rows)
    {
        if (start > _lengths[slot, layer])
            throw new InvalidOperationException($"layer {layer} holds {_lengths[slot, layer]} positions of this sequence; cannot write at position {start}");
        if (start + rows > Positions)
            throw new InvalidOperationException($"positions {start}..{start + rows - 1} exceed the context of {Positions}");
        _lengths[slot, layer] = start + rows;
        _versions[slot] = ++_writes;
    }

    /// <summary>Forgets every position at or after <paramref name="length"/> in every layer of the slot.</summary>
    public void Truncate(int slot, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        for (var l = 0; l < Layers; l++) _lengths[slot, l] = Math.Min(_lengths[slot, l], length);
    }

    /// <summary>A free slot, <paramref name="preferred"/> when it is free, claimed until <see cref="Release"/>; null when all are in use.</summary>
    public int? TryClaim(int preferred = 0)
    {
        lock (_claimed)
        {
            var slot = preferred >= 0 && preferred < Slots && !_claimed[preferred] ? preferred : Array.IndexOf(_claimed, false);
            if (slot < 0) return null;
            _claimed[slot] = true;
            return slot;
        }
    }

    /// <summary>Whether a sequence holds <paramref name="slot"/>.</summary>
    public bool IsClaimed(int slot)
    {
        lock (_claimed) return _claimed[slot];
    }

    /// <summary>Frees <paramref name="slot"/> for the next claim; its contents stay.</summary>
    public void Release(int slot)
    {
        lock (_claimed) _claimed[slot] = false;
    }

    /// <summary>Frees the device buffers.</summary>
    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
    }
}
