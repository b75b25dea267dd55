using System.Text;
using Microsoft.ML.Tokenizers;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A Llama SentencePiece tokenizer (BPE with byte fallback), read from a SentencePiece
/// <c>tokenizer.model</c>, from llama2.c's <c>tokenizer.bin</c> or from a GGUF file's
/// <c>tokenizer.ggml.*</c> metadata (both converted to the equivalent ModelProto in memory), encoded
/// and decoded by Microsoft.ML.Tokenizers in every case.
/// </summary>
public sealed class TextTokenizer : ModelTokenizer
{
    private readonly SentencePieceTokenizer _tokenizer;
    private readonly byte[] _modelProto;
    private readonly byte[][] _surface;

    /// <summary>The file the tokenizer was read from.</summary>
    public override string Path { get; }

    /// <summary>The pieces, special ids and normalizer flags.</summary>
    public SentencePieceModel Model { get; }

    /// <inheritdoc/>
    public override int VocabSize => Model.Pieces.Count;
    /// <summary>The id of the beginning-of-sequence token.</summary>
    public int BosId => Model.BosId;
    /// <summary>The id of the end-of-sequence token.</summary>
    public int EosId => Model.EosId;

    /// <summary>Whether a prompt starts with BOS: always, except where a GGUF file's
    /// <c>tokenizer.ggml.add_bos_token</c> says otherwise.</summary>
    public bool AddsBos { get; }

    private TextTokenizer(string path, SentencePieceModel model, byte[] modelProto, SentencePieceTokenizer tokenizer, bool addsBos)
    {
        Path = path;
        Model = model;
        _modelProto = modelProto;
        _tokenizer = tokenizer;
        AddsBos = addsBos;
        _surface = model.Pieces.Select(Surface).ToArray();
    }

    /// <summary>Reads a SentencePiece model, a llama2.c tokenizer or a GGUF file's tokenizer; the format
    /// is recognised from the content.</summary>
    public static TextTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        InputFile.Require(path, "tokenizer file");
        if (GgufFile.HasMagic(path))
        {
            using var gguf = GgufFile.Open(path);
            var fromGguf = SentencePieceModel.FromGguf(gguf);
            return Create(path, fromGguf, fromGguf.ToBytes(), gguf.Bool("tokenizer.ggml.add_bos_token") ?? true);
        }
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
        return Create(path, model, proto, addsBos: true);
    }

    private static TextTokenizer Create(string path, SentencePieceModel model, byte[] proto, bool addsBos)
    {
        SentencePieceTokenizer tokenizer;
        try
        {
            tokenizer = LlamaTokenizer.Create(new MemoryStream(proto, writable: false), addBeginOfSentence: false, addEndOfSentence: false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new ModelFormatException($"{path}: not a usable SentencePiece model ({e.GetType().Name}: {e.Message})");
        }
        return new TextTokenizer(path, model, proto, tokenizer, addsBos);
    }

    /// <summary>The tokenizer as SentencePiece ModelProto bytes (what a <c>tokenizer.model</c> holds).</summary>
    public byte[] ToModelProto() => (byte[])_modelProto.Clone();

    /// <summary>Encodes text as llama2.c's <c>run.c</c> does: BOS first when asked (and the tokenizer
    /// <see cref="AddsBos"/>), a dummy-prefix space before non-empty text, BPE merges with byte fallback.
    /// The empty text gives just [BOS] (or []).</summary>
    public override int[] Encode(string text, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(text);
        addBos &= AddsBos;
        if (text.Length == 0) return addBos ? [BosId] : [];
        var ids = _tokenizer.EncodeToIds(text, addBos, addEndOfSentence: false);
        return ids as int[] ?? ids.ToArray();
    }

    /// <summary>Decodes ids to text as SentencePiece does: control tokens vanish, byte pieces are
    /// reassembled into UTF-8 (invalid sequences become U+FFFD), and the dummy-prefix space of the first
    /// piece (at the start or after BOS) is removed.</summary>
    public override string Decode(IEnumerable<int> ids) => Decode(ids, new Stream(this, stripAtStart: true));

    /// <summary>A streaming decoder that follows llama2.c: the leading space of a piece right after BOS is dropped.</summary>
    public override TokenStream NewStream() => new Stream(this, stripAtStart: false);

    /// <summary>The text bytes a piece contributes: nothing for control/unused pieces, one raw byte for
    /// byte pieces, SentencePiece's " ⁇ " for unknown, the piece with '▁' as space otherwise.</summary>
    private static byte[] Surface(SentencePiece piece) => piece.Type switch
    {
        PieceType.Control or PieceType.Unused => [],
        PieceType.Byte => [SentencePieceModel.ByteOf(piece.Piece)],
        PieceType.Unknown => Encoding.UTF8.GetBytes(" \u2047 "),
        _ => Encoding.UTF8.GetBytes(piece.Piece.Replace('\u2581', ' ')),
    };

    private sealed class Stream(TextTokenizer owner, bool stripAtStart) : TokenStream
    {
        private int _previous = -1;
        private bool _sawText;

        /// <inheritdoc/>
        public override string Append(int id)
        {
            if ((uint)id >= (uint)owner.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the {owner.VocabSize}-token vocabulary of {owner.Path}");
            var piece = owner.Model.Pieces[id];
            ReadOnlySpan<byte> bytes = owner._surface[id];
            var afterBos = _previous == owner.BosId || (stripAtStart && !_sawText);
            if (afterBos && piece.Type is PieceType.Normal or PieceType.UserDefined && bytes.Length > 0 && bytes[0] == (byte)' ')
                bytes = bytes[1..];
            _previous = id;
            if (owner._surface[id].Length > 0) _sawText = true;
            return Emit(bytes);
        }
    }
}
