using System.Text;
using Microsoft.ML.Tokenizers;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A Llama SentencePiece tokenizer (BPE with byte fallback), read from a SentencePiece
/// <c>tokenizer.model</c> or from llama2.c's <c>tokenizer.bin</c> (converted to the equivalent
/// ModelProto in memory), encoded and decoded by Microsoft.ML.Tokenizers in both cases.
/// </summary>
public sealed class TextTokenizer
{
    private readonly SentencePieceTokenizer _tokenizer;
    private readonly byte[] _modelProto;
    private readonly byte[][] _surface;

    /// <summary>The file the tokenizer was read from.</summary>
    public string Path { get; }

    /// <summary>The pieces, special ids and normalizer flags.</summary>
    public SentencePieceModel Model { get; }

    public int VocabSize => Model.Pieces.Count;
    public int BosId => Model.BosId;
    public int EosId => Model.EosId;

    private TextTokenizer(string path, SentencePieceModel model, byte[] modelProto, SentencePieceTokenizer tokenizer)
    {
        Path = path;
        Model = model;
        _modelProto = modelProto;
        _tokenizer = tokenizer;
        _surface = model.Pieces.Select(Surface).ToArray();
    }

    /// <summary>Reads a SentencePiece model or a llama2.c tokenizer; the format is recognised from the content.</summary>
    public static TextTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        InputFile.Require(path, "tokenizer file");
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{path}: cannot read tokenizer ({e.Message})");
        }
        if (bytes.Length == 0) throw new ModelFormatException($"{path}: tokenizer file is empty");

        SentencePieceModel model;
        byte[] proto;
        if (SentencePieceModel.LooksLikeLlama2c(bytes))
        {
            model = SentencePieceModel.FromLlama2c(bytes, path);
            proto = model.ToBytes();
        }
        else
        {
            model = SentencePieceModel.Parse(bytes, path);
            proto = bytes;
        }

        SentencePieceTokenizer tokenizer;
        try
        {
            tokenizer = LlamaTokenizer.Create(new MemoryStream(proto, writable: false), addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelFormatException($"{path}: not a usable SentencePiece model ({e.GetType().Name}: {e.Message})");
        }
        return new TextTokenizer(path, model, proto, tokenizer);
    }

    /// <summary>The tokenizer as SentencePiece ModelProto bytes (what a <c>tokenizer.model</c> holds).</summary>
    public byte[] ToModelProto() => (byte[])_modelProto.Clone();

    /// <summary>Encodes text as llama2.c's <c>run.c</c> does: BOS first when asked, a dummy-prefix space
    /// before non-empty text, BPE merges with byte fallback. The empty text gives just [BOS] (or []).</summary>
    public int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (text.Length == 0) return addBos ? [BosId] : [];
        var ids = _tokenizer.EncodeToIds(text, addBos, addEndOfSentence: false);
        return ids as int[] ?? ids.ToArray();
    }

    /// <summary>Decodes ids to text as SentencePiece does: control tokens vanish, byte pieces are
    /// reassembled into UTF-8 (invalid sequences become U+FFFD), and the dummy-prefix space of the first
    /// piece (at the start or after BOS) is removed.</summary>
    public string Decode(IEnumerable<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var stream = NewStream(stripLeadingSpace: true);
        var text = new StringBuilder();
        foreach (var id in ids) text.Append(stream.Append(id));
        text.Append(stream.Flush());
        return text.ToString();
    }

    /// <summary>A streaming decoder that follows llama2.c: the leading space of a piece right after BOS is dropped.</summary>
    public Stream NewStream() => new(this, stripLeadingSpace: false);

    private Stream NewStream(bool stripLeadingSpace) => new(this, stripLeadingSpace);

    /// <summary>The text bytes a piece contributes: nothing for control/unused pieces, one raw byte for
    /// byte pieces, SentencePiece's " ⁇ " for unknown, the piece with '▁' as space otherwise.</summary>
    private static byte[] Surface(SentencePiece piece) => piece.Type switch
    {
        PieceType.Control or PieceType.Unused => [],
        PieceType.Byte => [SentencePieceModel.ByteOf(piece.Piece)],
        PieceType.Unknown => Encoding.UTF8.GetBytes(" \u2047 "),
        _ => Encoding.UTF8.GetBytes(piece.Piece.Replace('\u2581', ' ')),
    };

    /// <summary>
    /// Turns a sequence of token ids into text as they arrive. <see cref="Append"/> returns the text the
    /// token completes: bytes of a multi-byte UTF-8 character split over byte-fallback pieces are held
    /// back until the character is complete.
    /// </summary>
    public sealed class Stream
    {
        private readonly TextTokenizer _owner;
        private readonly bool _stripAtStart;
        private readonly List<byte> _pending = new();
        private int _previous = -1;
        private bool _sawText;

        internal Stream(TextTokenizer owner, bool stripLeadingSpace)
        {
            _owner = owner;
            _stripAtStart = stripLeadingSpace;
        }

        /// <summary>Adds one token; returns the text it completes (possibly empty).</summary>
        public string Append(int id)
        {
            if ((uint)id >= (uint)_owner.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the {_owner.VocabSize}-token vocabulary of {_owner.Path}");
            var piece = _owner.Model.Pieces[id];
            ReadOnlySpan<byte> bytes = _owner._surface[id];
            var afterBos = _previous == _owner.BosId || (_stripAtStart && !_sawText);
            if (afterBos && piece.Type is PieceType.Normal or PieceType.UserDefined && bytes.Length > 0 && bytes[0] == (byte)' ')
                bytes = bytes[1..];
            _previous = id;
            if (_owner._surface[id].Length > 0) _sawText = true;
            foreach (var b in bytes) _pending.Add(b);
            var complete = CompleteLength(_pending);
            if (complete == 0) return "";
            var text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pending)[..complete]);
            _pending.RemoveRange(0, complete);
            return text;
        }

        /// <summary>Returns what is still held back (an unfinished character, as U+FFFD) and clears it.</summary>
        public string Flush()
        {
            var text = Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_pending));
            _pending.Clear();
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
}
