namespace Kangaroo.Native.Engine.Decoding;

/// <summary>Why a generation ended.</summary>
public enum StopReason
{
    /// <summary>The model generated one of its stop (EOS) tokens, which is the last token yielded.</summary>
    StopToken,

    /// <summary>The token budget ran out: the requested maximum, or the end of the context.</summary>
    Length,
}

/// <summary>
/// One request's generation, stepped by its <see cref="Decoder"/> (or, with others, by an
/// <see cref="AutoregressiveBatch"/>): its sequence, sampler and budget, the tokens each step
/// committed, and its statistics. Disposing it gives the sequence's cache slot back.
/// </summary>
public sealed class Generation : IDisposable
{
    private readonly List<int> _committed = [];
    private readonly long _started = System.Diagnostics.Stopwatch.GetTimestamp();
    private bool _disposed;

    internal Generation(Decoder decoder, Sequence sequence, int budget, TokenSampler sampler)
    {
        (Decoder, Sequence, Budget, Sampler) = (decoder, sequence, budget, sampler);
        PromptLength = sequence.Tokens.Count;
        Stats = new DecoderStats { PromptTokens = PromptLength };
        if (budget == 0) Stop = StopReason.Length;
    }

    /// <summary>The decoder that started the generation and steps it alone.</summary>
    public Decoder Decoder { get; }
    /// <summary>The sequence it extends: the prompt, then the committed tokens, in its own cache slot.</summary>
    public Sequence Sequence { get; }
    /// <summary>Tokens of the prompt.</summary>
    public int PromptLength { get; }

    /// <summary>The most tokens it may generate (see <see cref="Decoder.Budget"/>).</summary>
    public int Budget { get; }

    /// <summary>Tokens generated so far, the stop token included.</summary>
    public int Produced => Sequence.Tokens.Count - PromptLength;

    internal TokenSampler Sampler { get; }

    /// <summary>Why it ended; null while it runs.</summary>
    public StopReason? Stop { get; private set; }

    /// <summary>True once <see cref="Stop"/> is set: further steps do nothing.</summary>
    public bool Finished => Stop is not null;

    /// <summary>Every prompt position but the last is in the cache: the next step decodes.</summary>
    public bool Prefilled => Sequence.Cached >= Sequence.Tokens.Count - 1;

    /// <summary>The generation's statistics, updated at each step.</summary>
    public DecoderStats Stats { get; }

    /// <summary>The tokens the last step committed (none while prefilling), the stop token included.</summary>
    public IReadOnlyList<int> Committed => _committed;

    /// <summary>Time since the generation started.</summary>
    public TimeSpan Elapsed => System.Diagnostics.Stopwatch.GetElapsedTime(_started);

    /// <summary>Starts a step: clears what the previous one committed.</summary>
    internal void BeginStep() => _committed.Clear();

    /// <summary>Marks the end of prefill in the statistics.</summary>
    internal void PrefillDone() => Stats.Prefill = Elapsed;

    /// <summary>Commits a round's tokens: at most what the budget leaves, cut after a stop token; records
    /// the round's accept length.</summary>
    internal void Commit(IReadOnlyList<int> round)
    {
        var eos = Sequence.Model.Config.EosIds;
        var accepted = 0;
        foreach (var token in round)
        {
            if (Produced == Budget) break;
            Sequence.Tokens.Add(token);
            _committed.Add(token);
            accepted++;
            if (eos.Contains(token))
            {
                Stop = StopReason.StopToken;
                break;
            }
        }
        Stats.AcceptLengths.Add(accepted);
        Stats.GeneratedTokens = Produced;
        Stats.Total = Elapsed;
        if (Stop is null && Produced == Budget) Stop = StopReason.Length;
    }

    /// <summary>Ends the generation (as <see cref="StopReason.Length"/> if it was still running) and gives its cache slot back.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Stop ??= StopReason.Length;
        Stats.Total = Elapsed;
        Decoder.Ended(this);
        Sequence.Dispose();
    }
}
