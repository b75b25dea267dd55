namespace Kangaroo.Native.Engine.Decoding;

/// <summary>What a generation did: rounds, accepted tokens per round and where the time went.</summary>
public sealed class DecoderStats
{
    /// <summary>Forward passes of the full target model (prefill not counted): one per token for
    /// autoregressive decoding, one per verification round for speculative decoders.</summary>
    public int TargetForwardPasses { get; set; }

    /// <summary>Tokens committed per round, the bonus or correction token included.</summary>
    public List<int> AcceptLengths { get; } = [];

    /// <summary>Tokens generated, the stop token included.</summary>
    public int GeneratedTokens { get; set; }

    /// <summary>Tokens of the prompt.</summary>
    public int PromptTokens { get; set; }

    /// <summary>Positions of the prompt whose keys and values were kept in the caches from the previous
    /// generation (see <see cref="Decoder.Generate"/>'s <c>reuseCache</c>) instead of being prefilled.</summary>
    public int ReusedTokens { get; set; }
    /// <summary>Time from the start to the end of prefill.</summary>
    public TimeSpan Prefill { get; set; }
    /// <summary>Time spent drafting (zero for plain decoding).</summary>
    public TimeSpan Draft { get; set; }
    /// <summary>Time spent in verification passes (zero for plain decoding).</summary>
    public TimeSpan Verify { get; set; }
    /// <summary>Time of the whole generation, prefill included.</summary>
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
