using System.Diagnostics;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Decoding;

public enum StopReason { StopToken, Length }

/// <summary>What a generation did: rounds, accepted tokens per round and where the time went.</summary>
public sealed class DecoderStats
{
    /// <summary>Forward passes of the full target model (prefill not counted): one per token for
    /// autoregressive decoding, one per verification round for speculative decoders.</summary>
    public int TargetForwardPasses { get; set; }

    /// <summary>Tokens committed per round, the bonus or correction token included.</summary>
    public List<int> AcceptLengths { get; } = [];

    public int GeneratedTokens { get; set; }

    /// <summary>Tokens of the prompt.</summary>
    public int PromptTokens { get; set; }

    /// <summary>Positions of the prompt whose keys and values were kept in the caches from the previous
    /// generation (see <see cref="Decoder.Generate"/>'s <c>reuseCache</c>) instead of being prefilled.</summary>
    public int ReusedTokens { get; set; }
    public TimeSpan Prefill { get; set; }
    public TimeSpan Draft { get; set; }
    public TimeSpan Verify { get; set; }
    public TimeSpan Total { get; set; }

    /// <summary>Mean tokens committed per verification round (1 for plain decoding).</summary>
    public double CompressionRate => AcceptLengths.Count == 0 ? 0 : AcceptLengths.Average();

    /// <summary>CTAR(w): the fraction of rounds that committed more than w tokens.</summary>
    public double Ctar(int w) => CtarOf(AcceptLengths, w);

    /// <summary>CTAR(w) of any rounds (of several generations together): the fraction that committed more than w tokens.</summary>
    public static double CtarOf(IReadOnlyCollection<int> acceptLengths, int w) => acceptLengths.Count == 0 ? 0 : acceptLengths.Count(n => n > w) / (double)acceptLengths.Count;

    /// <summary>Generated tokens per second of decoding (prefill excluded).</summary>
    public double DecodeTokensPerSecond => GeneratedTokens / Math.Max(1e-9, (Total - Prefill).TotalSeconds);

    /// <summary>Generated tokens per second of the whole generation, prefill included.</summary>
    public double TokensPerSecond => GeneratedTokens / Math.Max(1e-9, Total.TotalSeconds);
}

/// <summary>
/// A decoding strategy over a <see cref="LlamaModel"/>. <see cref="Generate"/> yields committed tokens
/// as they are produced, ending with the stop token if one ended generation. The committed sequence
/// T[0..cur] always has T[cur] not yet in any cache; caches hold positions 0..cur-1.
/// </summary>
public abstract class Decoder(LlamaModel model) : IDisposable
{
    private bool _disposed;

    private readonly Stopwatch _clock = new();
    private List<int> _held = []; // the sequence of the last generation: the caches' positions hold its tokens
    private long _heldVersion = -1;  // the cache's version when that generation ended

    public LlamaModel Model { get; } = model;
    public abstract string Name { get; }
    public DecoderStats Stats { get; private set; } = new();
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

    /// <summary>Validates the arguments now; generates as the result is enumerated. One generation runs
    /// on a model at a time: enumerating while another generation on the same model is unfinished
    /// (on another thread, or an enumeration neither finished nor disposed) throws.
    /// <paramref name="cancellationToken"/> is checked before each round. With <paramref name="reuseCache"/>,
    /// the positions of the longest prefix the prompt shares with this decoder's previous sequence (its
    /// prompt and generated tokens) keep their keys and values, when nothing wrote to the caches since,
    /// and only the rest is prefilled: a conversation continued turn by turn prefills each new turn only.</summary>
    public IEnumerable<int> Generate(IReadOnlyList<int> prompt, int maxNewTokens, SamplingOptions sampling, CancellationToken cancellationToken = default,
        bool reuseCache = false)
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
        return Run(prompt, Budget(prompt.Count, maxNewTokens), new TokenSampler(sampling), cancellationToken, reuseCache);
    }

    private IEnumerable<int> Run(IReadOnlyList<int> prompt, int budget, TokenSampler sampler, CancellationToken cancellationToken, bool reuseCache)
    {
        using var generation = Model.BeginGeneration();
        Stats = new DecoderStats { PromptTokens = prompt.Count };
        Stop = StopReason.Length;
        _clock.Restart();
        var cached = reuseCache ? CachedPrefix(prompt) : 0;
        Model.Cache.Truncate(cached);
        var tokens = new List<int>(prompt);
        _held = tokens;
        try
        {
            if (budget == 0) yield break;
            Stats.ReusedTokens = Prefill(tokens, cached);
            Stats.Prefill = _clock.Elapsed;
            var produced = 0;
            var round = new List<int>();
            while (produced < budget)
            {
                cancellationToken.ThrowIfCancellationRequested();
                round.Clear();
                Step(tokens, budget - produced, sampler, round);
                var stop = round.FindIndex(Model.Config.EosIds.Contains);
                if (stop >= 0) round.RemoveRange(stop + 1, round.Count - stop - 1);
                Stats.AcceptLengths.Add(round.Count);
                foreach (var token in round)
                {
                    tokens.Add(token);
                    produced++;
                    Stats.GeneratedTokens = produced;
                    Stats.Total = _clock.Elapsed;
                    yield return token;
                }
                if (stop >= 0)
                {
                    Stop = StopReason.StopToken;
                    yield break;
                }
            }
            Stats.Total = _clock.Elapsed;
        }
        finally
        {
            _heldVersion = Model.Cache.Version;
        }
    }

    /// <summary>How many leading positions of <paramref name="prompt"/> the caches hold from the previous
    /// generation: where its sequence and the prompt agree, all layers hold the position, and nothing wrote
    /// to the cache since. The prompt's last token is always fed again (it yields the first logits).</summary>
    private int CachedPrefix(IReadOnlyList<int> prompt)
    {
        if (_heldVersion != Model.Cache.Version) return 0;
        var limit = Math.Min(Math.Min(_held.Count, prompt.Count - 1), Model.Cache.CommonLength);
        var same = 0;
        while (same < limit && _held[same] == prompt[same]) same++;
        return same;
    }

    /// <summary>Fills the caches with the prompt's positions 0..count-2, of which the target's cache
    /// already holds the first <paramref name="cached"/>; returns how many of those were kept (a decoder
    /// whose own caches hold fewer prefills from there).</summary>
    protected abstract int Prefill(IReadOnlyList<int> tokens, int cached);

    /// <summary>One round: commits at least one and at most <paramref name="budget"/> tokens after
    /// <paramref name="tokens"/> into <paramref name="committed"/>, leaving the caches holding every
    /// position before the last committed token. Tokens after a stop token are discarded by the caller,
    /// which also records the round's accept length.</summary>
    protected abstract void Step(List<int> tokens, int budget, TokenSampler sampler, List<int> committed);

    /// <summary>Time elapsed since generation started.</summary>
    protected TimeSpan Elapsed => _clock.Elapsed;

    /// <summary>Chooses a token from one row of logits, as long as <paramref name="distribution"/>: the
    /// arg max with its probability when greedy, else a draw (with its probability) from the sampling
    /// distribution, which is left in <paramref name="distribution"/>.</summary>
    protected TopToken Choose(DeviceTensor logits, int row, TokenSampler sampler, float[] distribution)
    {
        var vocab = distribution.Length;
        var rowLogits = logits.Slice(row * vocab, vocab);
        if (sampler.Options.Greedy)
        {
            Span<TopToken> top = stackalloc TopToken[1];
            Model.Device.ArgMax(rowLogits, 1, vocab, top);
            return TokenSampler.RequireFinite(top[0]);
        }
        Model.Device.Download(rowLogits, distribution);
        sampler.ToDistribution(distribution);
        var token = sampler.Draw(distribution);
        return new TopToken(token, distribution[token]);
    }
}
