using System.Buffers.Binary;
using System.Text;

namespace Kangaroo.Native.Loader;

/// <summary>A SentencePiece piece type, as numbered in <c>sentencepiece_model.proto</c>.</summary>
public enum PieceType
{
    /// <summary>An ordinary piece of text.</summary>
    Normal = 1,

    /// <summary>The unknown token (<c>&lt;unk&gt;</c>).</summary>
    Unknown = 2,

    /// <summary>A control token such as BOS or EOS: never produced from text, decoded to nothing.</summary>
    Control = 3,

    /// <summary>A piece always matched whole in the text.</summary>
    UserDefined = 4,

    /// <summary>A piece never produced by encoding.</summary>
    Unused = 5,

    /// <summary>A byte-fallback piece (<c>&lt;0xAB&gt;</c>): one raw UTF-8 byte.</summary>
    Byte = 6,
}

/// <summary>One vocabulary entry of a SentencePiece model.</summary>
public readonly record struct SentencePiece(string Piece, float Score, PieceType Type);

/// <summary>
/// The parts of a SentencePiece <c>ModelProto</c> the engine needs, read from (or written to) its
/// protobuf bytes by hand: the pieces, the trainer's model type, byte fallback and special ids, and
/// the normalizer's whitespace flags. llama2.c's own tokenizer format (<c>tokenizer.bin</c>) is
/// converted to this, so every tokenizer goes through the same SentencePiece code path.
/// </summary>
public sealed class SentencePieceModel
{
    /// <c>TrainerSpec.model_type</c> of a unigram model.
    public const int ModelTypeUnigram = 1;
    /// <c>TrainerSpec.model_type</c> of a BPE model (Llama's).
    public const int ModelTypeBpe = 2;

    /// <summary>The vocabulary: entry i is token i.</summary>
    public required IReadOnlyList<SentencePiece> Pieces { get; init; }
    /// <see cref="ModelTypeUnigram"/> or <see cref="ModelTypeBpe"/>.
    public int ModelType { get; init; } = ModelTypeUnigram;
    /// <summary>Whether text no piece covers is encoded as <see cref="PieceType.Byte"/> pieces instead of the unknown id.</summary>
    public bool ByteFallback { get; init; }
    /// <summary>The id of the unknown token.</summary>
    public int UnknownId { get; init; }
    /// <summary>The id of the beginning-of-sequence token.</summary>
    public int BosId { get; init; } = 1;
    /// <summary>The id of the end-of-sequence token.</summary>
    public int EosId { get; init; } = 2;
    /// <summary>The id of the padding token; -1 for none.</summary>
    public int PadId { get; init; } = -1;
    /// <summary>Whether a space is put before the text before encoding.</summary>
    public bool AddDummyPrefix { get; init; } = true;
    /// <summary>Whether leading, trailing and repeated spaces are removed before encoding.</summary>
    public bool RemoveExtraWhitespaces { get; init; } = true;
    /// <summary>Whether spaces are encoded as U+2581 (▁).</summary>
    public bool EscapeWhitespaces { get; init; } = true;

    /// <summary>Parses a serialized ModelProto; <paramref name="source"/> names the file in errors.</summary>
    public static SentencePieceModel Parse(ReadOnlySpan<byte> bytes, string source)
    {
        var pieces = new List<SentencePiece>();
        int modelType = ModelTypeUnigram, unk = 0, bos = 1, eos = 2, pad = -1;
        bool byteFallback = false, dummyPrefix = true, removeSpaces = true, escapeSpaces = true, sawTrainer = false;
        var reader = new ProtoReader(bytes, source);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 2):
                    pieces.Add(ParsePiece(reader.Bytes(), source, pieces.Count));
                    break;
                case (2, 2):
                    sawTrainer = true;
                    var trainer = new ProtoReader(reader.Bytes(), source);
                    while (trainer.Next(out var f, out var w))
                    {
                        switch (f, w)
                        {
                            case (3, 0): modelType = (int)trainer.Varint(); break;
                            case (35, 0): byteFallback = trainer.Varint() != 0; break;
                            case (40, 0): unk = (int)trainer.Varint(); break;
                            case (41, 0): bos = (int)trainer.Varint(); break;
                            case (42, 0): eos = (int)trainer.Varint(); break;
                            case (43, 0): pad = (int)trainer.Varint(); break;
                            default: trainer.Skip(w); break;
                        }
                    }
                    break;
                case (3, 2):
                    var normalizer = new ProtoReader(reader.Bytes(), source);
                    while (normalizer.Next(out var f, out var w))
                    {
                        switch (f, w)
                        {
                            case (3, 0): dummyPrefix = normalizer.Varint() != 0; break;
                            case (4, 0): removeSpaces = normalizer.Varint() != 0; break;
                            case (5, 0): escapeSpaces = normalizer.Varint() != 0; break;
                            default: normalizer.Skip(w); break;
                        }
                    }
                    break;
                default:
                    reader.Skip(wire);
                    break;
            }
        }
        if (pieces.Count == 0) throw new ModelFormatException($"{source}: not a SentencePiece model (no pieces)");
        if (!sawTrainer) throw new ModelFormatException($"{source}: not a SentencePiece model (no trainer_spec)");
        if (modelType is not (ModelTypeUnigram or ModelTypeBpe))
            throw new ModelFormatException($"{source}: SentencePiece model type {modelType} is not supported (only BPE and unigram)");
        foreach (var (name, id) in new[] { ("unk_id", unk), ("bos_id", bos), ("eos_id", eos) })
            if (id < 0 || id >= pieces.Count)
                throw new ModelFormatException($"{source}: {name} {id} is outside the {pieces.Count}-piece vocabulary");
        return RequireText(source, new SentencePieceModel
        {
            Pieces = pieces, ModelType = modelType, ByteFallback = byteFallback, UnknownId = unk, BosId = bos, EosId = eos, PadId = pad,
            AddDummyPrefix = dummyPrefix, RemoveExtraWhitespaces = removeSpaces, EscapeWhitespaces = escapeSpaces,
        });
    }

    /// <summary>Refuses a vocabulary in which no piece stands for any text (every piece control,
    /// unknown or unused): every generated token would decode to nothing or to " ⁇ ".</summary>
    private static SentencePieceModel RequireText(string source, SentencePieceModel model)
    {
        if (!model.Pieces.Any(p => p.Type is PieceType.Normal or PieceType.UserDefined or PieceType.Byte))
            throw new ModelFormatException($"{source}: no piece stands for text (all {model.Pieces.Count} pieces are control, unknown or unused)");
        return model;
    }

    private static SentencePiece ParsePiece(ReadOnlySpan<byte> bytes, string source, int index)
    {
        string? piece = null;
        float score = 0;
        var type = PieceType.Normal;
        var reader = new ProtoReader(bytes, source);
        while (reader.Next(out var field, out var wire))
        {
            switch (field, wire)
            {
                case (1, 2): piece = reader.String(); break;
                case (2, 5): score = reader.Float(); break;
                case (3, 0):
                    var value = reader.Varint();
                    if (value is < 1 or > 6) throw new ModelFormatException($"{source}: piece {index} has unknown type {value}");
                    type = (PieceType)value;
                    break;
                default: reader.Skip(wire); break;
            }
        }
        if (piece is null) throw new ModelFormatException($"{source}: piece {index} has no text");
        return Checked(new SentencePiece(piece, score, type), source, index);
    }

    private static SentencePiece Checked(SentencePiece piece, string source, int index) =>
        piece.Type != PieceType.Byte || IsBytePiece(piece.Piece) ? piece
        : throw new ModelFormatException($"{source}: piece {index} '{piece.Piece}' has type BYTE but is not of the form <0xHH>");

    /// <summary>
    /// Reads the tokenizer of a GGUF file: <c>tokenizer.ggml.model</c> "llama" is a SentencePiece-style
    /// BPE whose <c>tokens</c>, <c>scores</c> and <c>token_type</c> (numbered as SentencePiece numbers
    /// piece types) are the pieces, with the <c>bos/eos/unknown_token_id</c>, <c>add_space_prefix</c> and
    /// <c>remove_extra_whitespaces</c> settings; byte fallback when the 256 byte pieces are there.
    /// </summary>
    public static SentencePieceModel FromGguf(GgufFile file)
    {
        var source = file.Path;
        ModelFormatException Error(string problem) => new($"{source}: {problem}");
        var model = file.String("tokenizer.ggml.model") ?? throw Error("no tokenizer (metadata 'tokenizer.ggml.model' is missing)");
        if (model != "llama") throw Error($"tokenizer.ggml.model '{model}' is not supported (supported: llama, SentencePiece-style)");
        var tokens = file.Strings("tokenizer.ggml.tokens") ?? throw Error("metadata 'tokenizer.ggml.tokens' is missing");
        var scores = file.Floats("tokenizer.ggml.scores") ?? new float[tokens.Length];
        var types = file.Integers("tokenizer.ggml.token_type") ?? Enumerable.Repeat((int)PieceType.Normal, tokens.Length).ToArray();
        if (scores.Length != tokens.Length || types.Length != tokens.Length)
            throw Error($"{tokens.Length} tokens but {scores.Length} scores and {types.Length} token types");
        var pieces = new SentencePiece[tokens.Length];
        for (var i = 0; i < tokens.Length; i++)
        {
            if (types[i] is < 1 or > 6) throw Error($"token {i} '{tokens[i]}' has unknown type {types[i]}");
            if (!float.IsFinite(scores[i])) throw Error($"token {i} '{tokens[i]}' has score {scores[i]}");
            pieces[i] = Checked(new SentencePiece(tokens[i], scores[i], (PieceType)types[i]), source, i);
        }
        int Id(string key, int fallback) =>
            file.Integer(key) is var id && (id ?? fallback) is var value && value >= 0 && value < tokens.Length
                ? (int)value
                : throw Error($"{key} {id} is outside the {tokens.Length}-token vocabulary");
        return RequireText(source, new SentencePieceModel
        {
            Pieces = pieces,
            ModelType = ModelTypeBpe,
            ByteFallback = pieces.Count(p => p.Type == PieceType.Byte) == 256,
            UnknownId = Id("tokenizer.ggml.unknown_token_id", 0),
            BosId = Id("tokenizer.ggml.bos_token_id", 1),
            EosId = Id("tokenizer.ggml.eos_token_id", 2),
            AddDummyPrefix = file.Bool("tokenizer.ggml.add_space_prefix") ?? true,
            RemoveExtraWhitespaces = file.Bool("tokenizer.ggml.remove_extra_whitespaces") ?? false,
            EscapeWhitespaces = true,
        });
    }

    /// <summary>Serializes the model as a SentencePiece ModelProto (the bytes of a <c>tokenizer.model</c>).</summary>
    public byte[] ToBytes()
    {
        var model = new ProtoWriter();
        foreach (var piece in Pieces)
        {
            var entry = new ProtoWriter();
            entry.String(1, piece.Piece);
            entry.Float(2, piece.Score);
            entry.Varint(3, (ulong)piece.Type);
            model.Message(1, entry);
        }
        var trainer = new ProtoWriter();
        trainer.Varint(3, (ulong)ModelType);
        trainer.Varint(4, (ulong)Pieces.Count);
        trainer.Varint(35, ByteFallback ? 1UL : 0UL);
        trainer.Varint(40, (ulong)(long)UnknownId);
        trainer.Varint(41, (ulong)(long)BosId);
        trainer.Varint(42, (ulong)(long)EosId);
        trainer.Varint(43, (ulong)(long)PadId); // negative int32 values are sign-extended to 10 varint bytes, as protobuf does
        model.Message(2, trainer);
        var normalizer = new ProtoWriter();
        normalizer.String(1, "identity");
        normalizer.Varint(3, AddDummyPrefix ? 1UL : 0UL);
        normalizer.Varint(4, RemoveExtraWhitespaces ? 1UL : 0UL);
        normalizer.Varint(5, EscapeWhitespaces ? 1UL : 0UL);
        model.Message(3, normalizer);
        return model.ToArray();
    }

    /// <summary>True when the bytes look like llama2.c's tokenizer format rather than a ModelProto: a
    /// ModelProto starts with a length-delimited field, so its first four bytes never form a small int32.</summary>
    public static bool LooksLikeLlama2c(ReadOnlySpan<byte> bytes) =>
        bytes.Length >= 4 && BinaryPrimitives.ReadInt32LittleEndian(bytes) is > 0 and <= 65536;

    /// <summary>
    /// Reads llama2.c's tokenizer format — int32 max_token_length, then per token float32 score, int32
    /// length and that many UTF-8 bytes — as a SentencePiece BPE model with byte fallback. llama2.c's
    /// export writes spaces for SentencePiece's '▁' and "\n&lt;s&gt;\n" / "\n&lt;/s&gt;\n" for the BOS/EOS pieces;
    /// both are undone here.
    /// </summary>
    public static SentencePieceModel FromLlama2c(ReadOnlySpan<byte> bytes, string source, int? expectedVocabSize = null)
    {
        if (bytes.Length < 4) throw new ModelFormatException($"{source}: {bytes.Length} bytes, too short for a llama2.c tokenizer");
        var maxLength = BinaryPrimitives.ReadInt32LittleEndian(bytes);
        if (maxLength <= 0 || maxLength > 65536)
            throw new ModelFormatException($"{source}: max_token_length {maxLength} is not plausible (is it a llama2.c tokenizer?)");
        var strict = new UTF8Encoding(false, throwOnInvalidBytes: true);
        var pieces = new List<SentencePiece>();
        var position = 4;
        while (position < bytes.Length)
        {
            var index = pieces.Count;
            if (bytes.Length - position < 8)
                throw new ModelFormatException($"{source}: truncated at token {index} (offset {position}: {bytes.Length - position} bytes left, need 8 for score and length)");
            var score = BinaryPrimitives.ReadSingleLittleEndian(bytes[position..]);
            var length = BinaryPrimitives.ReadInt32LittleEndian(bytes[(position + 4)..]);
            position += 8;
            if (length < 0 || length > maxLength)
                throw new ModelFormatException($"{source}: token {index} has length {length} (max_token_length is {maxLength})");
            if (bytes.Length - position < length)
                throw new ModelFormatException($"{source}: truncated at token {index} (needs {length} bytes at offset {position}, {bytes.Length - position} left)");
            if (!float.IsFinite(score)) throw new ModelFormatException($"{source}: token {index} has score {score}");
            string text;
            try
            {
                text = strict.GetString(bytes.Slice(position, length));
            }
            catch (DecoderFallbackException)
            {
                throw new ModelFormatException($"{source}: token {index} is not valid UTF-8");
            }
            position += length;
            pieces.Add(ToPiece(text, score));
        }
        if (expectedVocabSize is { } expected && pieces.Count != expected)
            throw new ModelFormatException($"{source}: {pieces.Count} tokens but the model's vocabulary has {expected} (truncated?)");
        if (pieces.Count < 3) throw new ModelFormatException($"{source}: only {pieces.Count} tokens (truncated?)");

        int Find(string piece, int fallback)
        {
            for (var i = 0; i < pieces.Count; i++) if (pieces[i].Piece == piece) return i;
            return fallback;
        }
        var byteCount = pieces.Count(p => p.Type == PieceType.Byte);
        return RequireText(source, new SentencePieceModel
        {
            Pieces = pieces,
            ModelType = ModelTypeBpe,
            ByteFallback = byteCount == 256,
            UnknownId = Find("<unk>", 0),
            BosId = Find("<s>", 1),
            EosId = Find("</s>", 2),
            AddDummyPrefix = true,
            RemoveExtraWhitespaces = false,
            EscapeWhitespaces = true,
        });
    }

    private static SentencePiece ToPiece(string text, float score)
    {
        switch (text)
        {
            case "<unk>": return new SentencePiece(text, score, PieceType.Unknown);
            case "\n<s>\n" or "<s>": return new SentencePiece("<s>", score, PieceType.Control);
            case "\n</s>\n" or "</s>": return new SentencePiece("</s>", score, PieceType.Control);
        }
        if (IsBytePiece(text)) return new SentencePiece(text, score, PieceType.Byte);
        return new SentencePiece(text.Replace(' ', '\u2581'), score, PieceType.Normal);
    }

    private static bool IsUpperHex(char c) => c is (>= '0' and <= '9') or (>= 'A' and <= 'F');

    /// <summary>True for the text of a BYTE piece: "&lt;0x" two upper-case hex digits "&gt;", as SentencePiece writes them.</summary>
    private static bool IsBytePiece(string text) =>
        text.Length == 6 && text.StartsWith("<0x", StringComparison.Ordinal) && text[5] == '>' && IsUpperHex(text[3]) && IsUpperHex(text[4]);

    /// <summary>The byte a BYTE piece ("&lt;0xE2&gt;") stands for; pieces are checked when read.</summary>
    public static byte ByteOf(string piece) => Convert.ToByte(piece.Substring(3, 2), 16);

    private ref struct ProtoReader(ReadOnlySpan<byte> data, string source)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _position;

        private readonly ModelFormatException Error(string problem) =>
            new($"{source}: not a valid SentencePiece model ({problem} at byte {_position})");

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_position >= _data.Length) return false;
            var tag = Varint();
            field = (int)(tag >> 3);
            wire = (int)(tag & 7);
            if (field == 0 || tag >> 3 > int.MaxValue) throw Error($"invalid field number {tag >> 3}");
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 70; shift += 7)
            {
                if (_position >= _data.Length) throw Error("truncated varint");
                var b = _data[_position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80) return result;
            }
            throw Error("varint longer than 10 bytes");
        }

        public ReadOnlySpan<byte> Bytes()
        {
            var length = Varint();
            if (length > (ulong)(_data.Length - _position)) throw Error($"length {length} runs past the end");
            var result = _data.Slice(_position, (int)length);
            _position += (int)length;
            return result;
        }

        public string String()
        {
            var bytes = Bytes();
            try
            {
                return new UTF8Encoding(false, true).GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw Error("string is not valid UTF-8");
            }
        }

        public float Float()
        {
            if (_data.Length - _position < 4) throw Error("truncated float");
            var value = BinaryPrimitives.ReadSingleLittleEndian(_data[_position..]);
            _position += 4;
            return value;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: Advance(8); break;
                case 2: Bytes(); break;
                case 5: Advance(4); break;
                default: throw Error($"unsupported wire type {wire}");
            }
        }

        private void Advance(int count)
        {
            if (_data.Length - _position < count) throw Error("truncated field");
            _position += count;
        }
    }

    private sealed class ProtoWriter
    {
        private readonly MemoryStream _stream = new();

        private void RawVarint(ulong value)
        {
            while (value >= 0x80)
            {
                _stream.WriteByte((byte)(value | 0x80));
                value >>= 7;
            }
            _stream.WriteByte((byte)value);
        }

        private void Tag(int field, int wire) => RawVarint((ulong)((field << 3) | wire));

        public void Varint(int field, ulong value)
        {
            Tag(field, 0);
            RawVarint(value);
        }

        public void Float(int field, float value)
        {
            Tag(field, 5);
            Span<byte> bytes = stackalloc byte[4];
            BinaryPrimitives.WriteSingleLittleEndian(bytes, value);
            _stream.Write(bytes);
        }

        public void String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

        public void Message(int field, ProtoWriter message) => Bytes(field, message.ToArray());

        private void Bytes(int field, byte[] value)
        {
            Tag(field, 2);
            RawVarint((ulong)value.Length);
            _stream.Write(value);
        }

        public byte[] ToArray() => _stream.ToArray();
    }
}
