using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine;

/// <summary>
/// The rows of one pass through the model: each row is a token at a position of a sequence, the
/// rows of one sequence consecutive positions in one run. Several sequences may share a pass; each
/// row's arithmetic is independent of the others (a block of rows equals one-row passes bit for bit),
/// so what runs beside a sequence never changes its result.
/// </summary>
public sealed class Batch
{
    private readonly int[] _tokens;
    private readonly int[] _slots;
    private readonly int[] _positions;
    private bool _changed;
    private readonly BatchRows _rows;

    /// <summary>An empty batch of at most <paramref name="capacity"/> rows.</summary>
    public Batch(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        (_tokens, _slots, _positions) = (new int[capacity], new int[capacity], new int[capacity]);
        _rows = new BatchRows(capacity);
    }

    /// <summary>The most rows the batch takes.</summary>
    public int Capacity => _tokens.Length;

    /// <summary>Rows in the batch now.</summary>
    public int Count { get; private set; }

    /// <summary>The token of each row.</summary>
    public ReadOnlySpan<int> Tokens => _tokens.AsSpan(0, Count);

    /// <summary>Which slot and position each row is, for the device.</summary>
    public BatchRows Rows
    {
        get
        {
            if (_changed) _rows.Set(_slots.AsSpan(0, Count), _positions.AsSpan(0, Count));
            _changed = false;
            return _rows;
        }
    }

    /// <summary>Removes every row.</summary>
    public void Clear()
    {
        Count = 0;
        _changed = true;
    }

    /// <summary>Adds <paramref name="tokens"/> at positions start, start + 1, ... of the sequence in
    /// <paramref name="slot"/>, after its rows already in the batch (if any); returns the first row.</summary>
    public int Add(int slot, int start, ReadOnlySpan<int> tokens)
    {
        if (Count + tokens.Length > Capacity) throw new InvalidOperationException($"a batch of {Capacity} rows cannot take {tokens.Length} more after {Count}");
        for (var r = 0; r < Count; r++)
            if (_slots[r] == slot && (r != Count - 1 || _positions[r] != start - 1))
                throw new InvalidOperationException($"the rows of slot {slot} must be consecutive positions in one run");
        var first = Count;
        for (var i = 0; i < tokens.Length; i++) (_tokens[Count], _slots[Count], _positions[Count++]) = (tokens[i], slot, start + i);
        _changed = true;
        return first;
    }

    /// <summary>The cache slot (sequence) of <paramref name="row"/>.</summary>
    public int Slot(int row) => _slots[row];

    /// <summary>The position of <paramref name="row"/> in its sequence.</summary>
    public int Position(int row) => _positions[row];

    /// <summary>The runs of rows [first, first + count): (slot, first position, rows) for each sequence.</summary>
    public IEnumerable<(int Slot, int Start, int Rows)> Runs(int first, int count)
    {
        for (var r = first; r < first + count;)
        {
            var end = r + 1;
            while (end < first + count && _slots[end] == _slots[r]) end++;
            yield return (_slots[r], _positions[r], end - r);
            r = end;
        }
    }
}
