namespace Kangaroo.Native.Kernels;

/// <summary>
/// Where each row of a pass through the model belongs: row r is position <see cref="Position"/>(r) of
/// the sequence whose keys and values live in KV cache slot <see cref="Slot"/>(r). Set on the host;
/// a device copies it to its own memory once per <see cref="Version"/>. <see cref="Slice"/> is a view
/// of consecutive rows (a chunk of a long pass) that shares the whole's storage and version.
/// </summary>
public sealed class BatchRows
{
    private readonly int[] _slots;
    private readonly int[] _positions;
    private int _count;

    /// <summary>Room for <paramref name="capacity"/> rows, none set yet.</summary>
    public BatchRows(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _slots = new int[capacity];
        _positions = new int[capacity];
        Root = this;
    }

    private BatchRows(BatchRows root, int offset, int count)
    {
        (_slots, _positions, Root, Offset, _count) = (root._slots, root._positions, root, offset, count);
    }

    /// <summary>The rows this is a view of (itself when it is not a view).</summary>
    public BatchRows Root { get; }

    /// <summary>The first row of <see cref="Root"/> this view starts at.</summary>
    public int Offset { get; }

    /// <summary>Rows set (of this view).</summary>
    public int Count => _count;

    /// <summary>The most rows the whole can hold.</summary>
    public int Capacity => _slots.Length;

    /// <summary>Changes whenever <see cref="Set"/> changes the rows.</summary>
    public long Version { get; private set; }

    /// <summary>The KV cache slot of <paramref name="row"/>.</summary>
    public int Slot(int row) => _slots[Offset + CheckRow(row)];

    /// <summary>The position of <paramref name="row"/> in its sequence.</summary>
    public int Position(int row) => _positions[Offset + CheckRow(row)];

    /// <summary>Every row's slot and position, of the whole (not a view): what a device copies.</summary>
    public ReadOnlySpan<int> AllSlots => _slots.AsSpan(0, Root._count);

    /// <summary>Every row's position, of the whole (not a view).</summary>
    public ReadOnlySpan<int> AllPositions => _positions.AsSpan(0, Root._count);

    /// <summary>Makes the rows (slots[r], positions[r]) for r in [0, slots.Length).</summary>
    public void Set(ReadOnlySpan<int> slots, ReadOnlySpan<int> positions)
    {
        if (Root != this) throw new InvalidOperationException("a view of rows cannot be set; set the whole");
        if (slots.Length != positions.Length) throw new ArgumentException($"{slots.Length} slots for {positions.Length} positions");
        ArgumentOutOfRangeException.ThrowIfGreaterThan(slots.Length, Capacity, nameof(slots));
        slots.CopyTo(_slots);
        positions.CopyTo(_positions);
        _count = slots.Length;
        Version++;
    }

    /// <summary>Rows [first, first + count) as a view.</summary>
    public BatchRows Slice(int first, int count)
    {
        if (first < 0 || count < 0 || first + count > _count) throw new ArgumentOutOfRangeException(nameof(first), $"rows [{first}, {first + count}) of {_count}");
        return new BatchRows(Root, Offset + first, count);
    }

    /// <summary>Consecutive positions start, start + 1, ... of one slot: a single sequence's block.</summary>
    public static BatchRows Sequence(int slot, int start, int count)
    {
        var rows = new BatchRows(Math.Max(1, count));
        var slots = new int[count];
        Array.Fill(slots, slot);
        rows.Set(slots, Enumerable.Range(start, count).ToArray());
        return rows;
    }

    private int CheckRow(int row) => (uint)row < (uint)_count ? row : throw new ArgumentOutOfRangeException(nameof(row), $"row {row} of {_count}");
}
