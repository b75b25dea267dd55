using System.Runtime.InteropServices;
using System.Text;

namespace Kangaroo.Native.Loader;

/// <summary>
/// The tokenizer a model is used with: a SentencePiece <c>tokenizer.model</c> or llama2.c tokenizer
/// (<see cref="TextTokenizer"/>), or a Hugging Face <c>tokenizer.json</c> (<see cref="HfTokenizer"/>).
/// </summary>
public abstract class ModelTokenizer
{
    /// <summary>The file the tokenizer was read from.</summary>
    public abstract string Path { get; }

    /// <summary>One more than the largest token id the tokenizer can produce.</summary>
    public abstract int VocabSize { get; }

    /// <summary>Token ids of <paramref name="text"/>; with <paramref name="addSpecialTokens"/>, the
    /// tokens the model expects around a text (BOS) are added as the tokenizer's own library adds them.</summary>
    public abstract int[] Encode(string text, bool addSpecialTokens);

    /// <summary>A streaming decoder of generated (or prompt) ids.</summary>
    public abstract TokenStream NewStream();

    /// <summary>Token ids of a prompt: the text with the model's special tokens (BOS).</summary>
    public int[] EncodePrompt(string text) => Encode(text, addSpecialTokens: true);

    /// <summary>Decodes ids to text (special tokens such as BOS and EOS write nothing).</summary>
    public virtual string Decode(IEnumerable<int> ids) => Decode(ids, NewStream());

    /// <summary>The text of <paramref name="ids"/> through <paramref name="stream"/>, flushed.</summary>
    protected static string Decode(IEnumerable<int> ids, TokenStream stream)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var text = new StringBuilder();
        foreach (var id in ids) text.Append(stream.Append(id));
        return text.Append(stream.Flush()).ToString();
    }

    /// <summary>Opens <c>tokenizer.json</c> (a name ending in .json) as a Hugging Face tokenizer, anything
    /// else as a SentencePiece model or llama2.c tokenizer.</summary>
    public static ModelTokenizer Open(string path) =>
        path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) ? HfTokenizer.Load(path) : TextTokenizer.Load(path);
}

/// <summary>
/// Turns token ids into text as they arrive. Each token contributes bytes; <see cref="Emit"/> returns
/// the text they complete, holding back the bytes of a UTF-8 character split over several tokens
/// (byte-fallback or byte-level pieces) until the character is complete, so streamed output never
/// splits a character.
/// </summary>
public abstract class TokenStream
{
    private readonly List<byte> _pending = new();

    /// <summary>Adds one token; returns the text it completes (possibly empty).</summary>
    public abstract string Append(int id);

    /// <summary>Returns what is still held back (an unfinished character, as U+FFFD) and clears it.</summary>
    public string Flush()
    {
        var text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(_pending));
        _pending.Clear();
        return text;
    }

    /// <summary>Queues a token's bytes and returns the text that is now complete.</summary>
    protected string Emit(ReadOnlySpan<byte> bytes)
    {
        _pending.AddRange(bytes);
        var complete = CompleteLength(_pending);
        if (complete == 0) return "";
        var text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(_pending)[..complete]);
        _pending.RemoveRange(0, complete);
        return text;
    }

    /// <summary>The length of the prefix that does not end inside a UTF-8 sequence which could still be completed.</summary>
    private static int CompleteLength(List<byte> bytes)
    {
        // Look back at most 3 bytes for the lead byte of the last sequence.
        for (var back = 1; back <= Math.Min(3, bytes.Count); back++)
        {
            var b = bytes[^back];
            if ((b & 0xC0) == 0x80) continue; // continuation byte: keep looking for its lead
            var needed = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
            return needed > back ? bytes.Count - back : bytes.Count;
        }
        return bytes.Count;
    }
}
