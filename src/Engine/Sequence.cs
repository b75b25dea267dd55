using Kangaroo.Native.Engine.Kangaroo;

namespace Kangaroo.Native.Engine;

/// <summary>
/// One sequence on a model: the KV cache slot it holds until it is disposed, its tokens (prompt and
/// committed ones) and, for a self-speculative decoder, what its draft head has seen. Positions
/// 0..<see cref="Cached"/>-1 of the slot hold the keys and values of the first tokens; after every step
/// of a generation all tokens but the last are cached (the last is fed in the next step).
/// </summary>
public sealed class Sequence : IDisposable
{
    private bool _released;

    internal Sequence(LlamaModel model, int slot) => (Model, Slot) = (model, slot);

    /// <summary>The model whose cache holds the sequence.</summary>
    public LlamaModel Model { get; }

    /// <summary>The cache slot holding this sequence's keys and values.</summary>
    public int Slot { get; }

    /// <summary>The prompt and committed tokens.</summary>
    public List<int> Tokens { get; } = [];

    /// <summary>Positions every layer of the slot holds.</summary>
    public int Cached => Model.Cache.CommonLength(Slot);

    /// <summary>The draft head's view of the sequence, kept by a self-speculative decoder (null otherwise).</summary>
    internal DraftState? Draft { get; set; }

    /// <summary>Forgets every position at or after <paramref name="length"/>, in the model's cache and the draft head's.</summary>
    public void Truncate(int length)
    {
        Model.Cache.Truncate(Slot, length);
        Draft?.Truncate(length);
    }

    /// <summary>Gives the slot back; the cache keeps its contents for a later sequence that claims it.</summary>
    public void Dispose()
    {
        if (_released) return;
        _released = true;
        Model.Cache.Release(Slot);
    }
}
