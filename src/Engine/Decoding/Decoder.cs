using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Decoding;

/// <summary>
/// A decoding strategy over a <see cref="LlamaModel"/>. <see cref="Start"/> begins a generation on a
/// sequence of its own and <see cref="Step"/> advances it by a prefill chunk or one round, so a caller
/// (a server) can interleave generations; <see cref="Generate"/> runs one to the end and yields its
/// tokens as they are committed, ending with the stop token if one ended it.
/// </summary>
public abstract class Decoder(LlamaModel model) : IDisposable
{
    private bool _disposed;
    private readonly Dictionary<int, (List<int> Tokens, long Version)> _held = []; // per cache slot: what this decoder's last generation there left

    /// <summary>The model this decoder runs; the decoder does not own it.</summary>
    public LlamaModel Model { get; } = model;
    /// <summary>The decoder's name: autoregressive, kangaroo or early-exit.</summary>
    public abstract string Name { get; }

    /// <summary>The statistics of the latest generation.</summary>
    public DecoderStats Stats { get; private set; } = new();

    /// <summary>Why the latest generation ended.</summary>
    public StopReason Stop { get; private set; }

    /// <summary>Gives the decoder's device buffers back (and the draft head of a decoder that
    /// <see cref="InferenceSession.CreateDecoder"/> made); the model and its caches stay with the
    /// session. A decoder made per request should be disposed after it, or its buffers stay until the
    /// session is disposed.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ReleaseBuffers();
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes what this decoder allocated on the device; called once.</summary>
    protected abstract void ReleaseBuffers();

    /// <summary>The number of tokens a generation may add: at most <paramref name="maxNewTokens"/>,
    /// clamped so that every token that is fed back fits the context (the last generated token never
    /// is: prompt + generated tokens may reach context + 1, as in llama2.c).</summary>
    public int Budget(int promptLength, int maxNewTokens) => Math.Max(0, Math.Min(maxNewTokens, Model.Context + 1 - promptLength));

    /// <summary>Validates the arguments now; generates as the result is enumerated. The generation claims
    /// a cache slot of the model while it is enumerated: with one slot (the default), enumerating while
    /// another generation on the same model is unfinished (on another thread, or an enumeration neither
    /// finished nor disposed) throws. <paramref name="cancellationToken"/> is checked before each round.
    /// With <paramref name="reuseCache"/>, the positions of the longest prefix the prompt shares with
    /// the sequence this decoder last left in a free cache slot (its prompt and generated tokens) keep
    /// their keys and values, when nothing wrote to that slot since, and only the rest is prefilled: a
    /// conversation continued turn by turn prefills each new turn only.</summary>
    public IEnumerable<int> Generate(IReadOnlyList<int> prompt, int maxNewTokens, SamplingOptions sampling, CancellationToken cancellationToken = default,
        bool reuseCache = false)
    {
        Validate(prompt, maxNewTokens, sampling);
        return Run(prompt, maxNewTokens, sampling, cancellationToken, reuseCache);
    }

    private IEnumerable<int> Run(IReadOnlyList<int> prompt, int maxNewTokens, SamplingOptions sampling, CancellationToken cancellationToken, bool reuseCache)
    {
        using var generation = Start(prompt, maxNewTokens, sampling, reuseCache);
        while (!generation.Finished)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (var token in Step(generation)) yield return token;
        }
    }

    /// <summary>Begins a generation: validates, claims a free cache slot (with <paramref name="reuseCache"/>,
    /// the one holding the longest prefix of the prompt) and keeps what <paramref name="reuseCache"/>
    /// allows; nothing runs until <see cref="Step"/>. Dispose the result to give the slot back.</summary>
    public Generation Start(IReadOnlyList<int> prompt, int maxNewTokens, SamplingOptions sampling, bool reuseCache = false)
    {
        Validate(prompt, maxNewTokens, sampling);
        var preferred = reuseCache ? _held.Keys.Where(s => !Model.Cache.IsClaimed(s)).OrderByDescending(s => CachedPrefix(prompt, s)).FirstOrDefault() : 0;
        var sequence = Model.StartSequence(preferred);
        try
        {
            var cached = reuseCache ? CachedPrefix(prompt, sequence.Slot) : 0;
            sequence.Tokens.AddRange(prompt);
            var generation = new Generation(this, sequence, Budget(prompt.Count, maxNewTokens), new TokenSampler(sampling));
            Stats = generation.Stats;
            Stop = StopReason.Length;
            var kept = Begin(generation, cached);
            sequence.Truncate(kept);
            generation.Stats.ReusedTokens = kept;
            if (generation.Prefilled) generation.PrefillDone();
            return generation;
        }
        catch
        {
            sequence.Dispose();
            throw;
        }
    }

    /// <summary>Advances a generation of this decoder by one step: a chunk of its prompt, or one round.
    /// Returns the tokens the step committed (none while prefilling).</summary>
    public IReadOnlyList<int> Step(Generation generation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (generation.Decoder != this) throw new ArgumentException("the generation belongs to another decoder", nameof(generation));
        if (generation.Finished) throw new InvalidOperationException("the generation has finished");
        generation.BeginStep();
        Advance(generation);
        if (generation.Finished) Stop = generation.Stop!.Value;
        return generation.Committed;
    }

    private void Validate(IReadOnlyList<int> prompt, int maxNewTokens, SamplingOptions sampling)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(sampling);
        var context = Model.Context;
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty (it needs at least the BOS token)");
        if (prompt.Count > context)
            throw new ArgumentException($"the prompt is {prompt.Count} tokens but the context is {context} positions (--context chooses up to the model's max_position_embeddings {Model.Config.MaxSeqLen})");
        ArgumentOutOfRangeException.ThrowIfNegative(maxNewTokens);
        foreach (var id in prompt)
            if ((uint)id >= (uint)Model.Config.VocabSize)
                throw new ArgumentException($"prompt token id {id} is outside the model's vocabulary of {Model.Config.VocabSize}");
        sampling.Validate();
    }

    /// <summary>How many leading positions of <paramref name="prompt"/> the slot holds from this decoder's
    /// previous generation: where its sequence and the prompt agree, all layers hold the position, and
    /// nothing wrote to the slot since. The prompt's last token is always fed again (it yields the first logits).</summary>
    private int CachedPrefix(IReadOnlyList<int> prompt, int slot)
    {
        if (!_held.TryGetValue(slot, out var held) || held.Version != Model.Cache.Version(slot)) return 0;
        var limit = Math.Min(Math.Min(held.Tokens.Count, prompt.Count - 1), Model.Cache.CommonLength(slot));
        var same = 0;
        while (same < limit && held.Tokens[same] == prompt[same]) same++;
        return same;
    }

    /// <summary>Called when a generation of this decoder is disposed: remembers what its slot holds.</summary>
    internal void Ended(Generation generation)
    {
        _held[generation.Sequence.Slot] = (generation.Sequence.Tokens, Model.Cache.Version(generation.Sequence.Slot));
        Stop = generation.Stop ?? StopReason.Length;
    }

    /// <summary>Prepares a new generation whose sequence holds <paramref name="cached"/> positions of
    /// its prompt; returns how many it keeps (a decoder whose own caches hold fewer truncates further).</summary>
    protected virtual int Begin(Generation generation, int cached) => cached;

    /// <summary>One step: the next prefill chunk, or one round that commits at least one token
    /// (<see cref="Generation.Commit"/>), leaving the cache holding every position before the last
    /// committed token.</summary>
    protected abstract void Advance(Generation generation);

    /// <summary>Chooses a token from one row of logits, as long as <paramref name="distribution"/>: the
    /// arg max with its probability when greedy, else a draw (with its probability) from the sampling
    /// distribution, which is left in <paramref name="distribution"/>.</summary>
    internal static TopToken Choose(ComputeDevice device, DeviceTensor logits, int row, TokenSampler sampler, float[] distribution)
    {
        var vocab = distribution.Length;
        var rowLogits = logits.Slice(row * vocab, vocab);
        if (sampler.Options.Greedy)
        {
            Span<TopToken> top = stackalloc TopToken[1];
            device.ArgMax(rowLogits, 1, vocab, top);
            return TokenSampler.RequireFinite(top[0]);
        }
        device.Download(rowLogits, distribution);
        sampler.ToDistribution(distribution);
        var token = sampler.Draw(distribution);
        return new TopToken(token, distribution[token]);
    }
}
