using System.Text;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Chat;

/// <summary>
/// The text of a reply as its tokens are committed: decoded incrementally, ended by the model's stop token
/// (which adds no text) or just before the first stop sequence. Text that may still become the start of a
/// stop sequence is held back until it cannot. <see cref="KangarooChatClient"/> and the server give out
/// replies through it, so both cut stop sequences the same way.
/// </summary>
public sealed class ReplyText
{
    private readonly TokenStream _stream;
    private readonly IReadOnlyList<int> _stopTokens;
    private readonly List<string> _stops;
    private readonly StringBuilder _pending = new();

    /// <summary>A reply decoded with <paramref name="tokenizer"/>, stopped by a token or a text.</summary>
    /// <param name="tokenizer">the model's tokenizer; the reply keeps a stream of it.</param>
    /// <param name="stopTokens">the model's stop (EOS) ids.</param>
    /// <param name="stopSequences">texts that end the reply before them; empty ones are ignored.</param>
    public ReplyText(ModelTokenizer tokenizer, IReadOnlyList<int> stopTokens, IEnumerable<string>? stopSequences)
    {
        _stream = tokenizer.NewStream();
        _stopTokens = stopTokens;
        _stops = stopSequences?.Where(s => s.Length > 0).ToList() ?? [];
    }

    /// <summary>True once the stop token or a stop sequence ended the reply.</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds a committed token; returns the text that can be given out now (possibly empty). Once
    /// <see cref="Stopped"/>, no more tokens are taken.</summary>
    public string Append(int token)
    {
        if (Stopped) throw new InvalidOperationException("the reply has ended");
        var atEnd = _stopTokens.Contains(token);
        _pending.Append(atEnd ? _stream.Flush() : _stream.Append(token));
        var (text, stopped) = Release(atEnd);
        Stopped = stopped || atEnd;
        return text;
    }

    /// <summary>The text still held when generation ended without a stop (at its length): bytes of an
    /// unfinished character and a tail that might have begun a stop sequence; a stop sequence completed
    /// within it still ends the reply there.</summary>
    public string Finish()
    {
        if (Stopped) return "";
        _pending.Append(_stream.Flush());
        var (rest, stopped) = Release(atEnd: true);
        Stopped = stopped;
        return rest;
    }

    /// <summary>The pending text that can be given out: up to the first stop sequence (then <c>stopped</c>),
    /// else all but a tail that may still become one (all of it at the end).</summary>
    private (string Text, bool Stopped) Release(bool atEnd)
    {
        var text = _pending.ToString();
        var cut = _stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
        if (cut >= 0)
        {
            _pending.Clear();
            return (text[..cut], true);
        }
        var held = atEnd ? 0 : _stops.Select(s => HeldLength(text, s)).DefaultIfEmpty(0).Max();
        _pending.Remove(0, text.Length - held);
        return (text[..^held], false);
    }

    /// <summary>The longest end of <paramref name="text"/> that is a beginning of <paramref name="stop"/>.</summary>
    private static int HeldLength(string text, string stop)
    {
        for (var n = Math.Min(text.Length, stop.Length - 1); n > 0; n--)
            if (string.CompareOrdinal(text, text.Length - n, stop, 0, n) == 0) return n;
        return 0;
    }
}
