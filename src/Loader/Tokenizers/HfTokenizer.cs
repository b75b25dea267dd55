using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace Kangaroo.Native.Loader;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model, both families: SentencePiece-style (a
/// normalizer writes spaces as "▁", byte fallback or <c>&lt;unk&gt;</c> for characters outside the
/// vocabulary: Llama 2, Mistral, TinyLlama) and byte-level (a regex pre-tokenizer, every byte a
/// character: GPT-2, Llama 3, Qwen2, SmolLM2). Settings from <c>tokenizer_config.json</c> beside it
/// (<c>add_bos_token</c>, <c>bos_token</c>, <c>eos_token</c>) take precedence over the post-processor,
/// as in transformers.
/// <para>
/// The BPE merges of each pre-tokenized word are Microsoft.ML.Tokenizers' <see cref="BpeTokenizer"/>.
/// The pipeline around them is ours, because that library does not have Hugging Face's semantics for
/// it: added tokens matched in raw or normalized text (with lstrip, rstrip, single_word), the Prepend
/// and Replace normalizers, Split/Digits/Metaspace pre-tokenizers, byte fallback, ignore_merges, the
/// post-processor's template and the decoder chain.
/// </para>
/// </summary>
public sealed class HfTokenizer : ModelTokenizer
{
    private readonly BpeTokenizer _bpe;
    private readonly Dictionary<string, int> _vocab;
    private readonly AddedTokens _raw;
    private readonly AddedTokens _normalized;
    private readonly Func<string, string>? _normalizer;
    private readonly PreTokenizerStep? _preTokenizer;
    private readonly int? _unknownId;
    private readonly bool _fuseUnknown;
    private readonly int[]? _byteIds;
    private readonly bool _ignoreMerges;
    private readonly int[] _prefix;
    private readonly int[] _suffix;
    private readonly byte[][] _surface;
    private readonly int _leadingSpacesToStrip;

    /// <inheritdoc/>
    public override string Path { get; }
    /// <inheritdoc/>
    public override int VocabSize => _surface.Length;

    /// <summary>The ids of <c>eos_token</c> in tokenizer_config.json (none when it names none).</summary>
    public IReadOnlyList<int> EosIds { get; }

    private HfTokenizer(string path, JsonField root, JsonField config)
    {
        Path = path;
        var model = root["model"];
        // Files written by early versions of the library leave out the type of a BPE model.
        var type = model["type"].StringOrNull() ?? (model["merges"].IsNull ? "(none)" : "BPE");
        if (type != "BPE") throw model["type"].Error($"'{type}' is not supported (only BPE models)");
        if (!model["dropout"].IsNull && model["dropout"].Number() != 0) throw model["dropout"].Error("must be null: BPE dropout is for training");
        foreach (var affix in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
            if (model[affix].StringOrNull() is { Length: > 0 } value) throw model[affix].Error($"'{value}' is not supported");

        _vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var (token, id) in model["vocab"].Properties())
            if (!_vocab.TryAdd(token, id.Int()) || id.Int() < 0) throw id.Error("is negative or repeats a token");
        var merges = model["merges"].Items().Select(Merge).ToList();
        try
        {
            // Without a pre-tokenizer BpeTokenizer splits words at non-word characters; each word we pass is one word.
            var wholeWord = new RegexPreTokenizer(new Regex("(?s).+", RegexOptions.CultureInvariant), specialTokens: null);
            _bpe = BpeTokenizer.Create(new BpeOptions(_vocab) { Merges = merges, PreTokenizer = wholeWord });
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw model.Error($"is not a usable BPE model ({e.Message})");
        }
        _ignoreMerges = model["ignore_merges"].Bool(false);
        _fuseUnknown = model["fuse_unk"].Bool(false);
        if (model["unk_token"].StringOrNull() is { } unk)
            _unknownId = _vocab.TryGetValue(unk, out var unkId) ? unkId : throw model["unk_token"].Error($"'{unk}' is not in the vocabulary");
        if (model["byte_fallback"].Bool(false))
        {
            var byteIds = Enumerable.Range(0, 256).Select(b => _vocab.GetValueOrDefault($"<0x{b:X2}>", -1)).ToArray();
            _byteIds = byteIds.Any(id => id >= 0) ? byteIds : null; // no byte pieces: unknown characters become <unk>
        }

        _normalizer = HfNormalizer.Parse(root["normalizer"]);
        _preTokenizer = HfPreTokenizer.Parse(root["pre_tokenizer"]);
        var added = root["added_tokens"].IsNull ? [] : root["added_tokens"].Items().Select(AddedToken.Parse).ToList();
        _raw = new AddedTokens(added.Where(t => !t.Normalized));
        _normalized = new AddedTokens(added.Where(t => t.Normalized), _normalizer);

        var decoder = new HfDecoder(root["decoder"]);
        _leadingSpacesToStrip = decoder.LeadingSpacesToStrip;
        var largest = Math.Max(_vocab.Values.DefaultIfEmpty(-1).Max(), added.Select(t => t.Id).DefaultIfEmpty(-1).Max());
        if (largest >= LlamaConfig.MaxDimension || added.Any(t => t.Id < 0))
            throw root["added_tokens"].Error($"or model.vocab holds a token id outside [0, {LlamaConfig.MaxDimension})");
        var size = largest + 1;
        _surface = new byte[size][];
        foreach (var (token, id) in _vocab) _surface[id] = decoder.Bytes(token);
        foreach (var token in added) _surface[token.Id] = token.Special ? [] : decoder.Bytes(token.Content);
        for (var id = 0; id < size; id++) _surface[id] ??= [];

        int? Id(JsonField field) => TokenContent(field) is { } content
            ? added.FirstOrDefault(t => t.Content == content)?.Id ?? (_vocab.TryGetValue(content, out var id) ? id : throw field.Error($"'{content}' is not a token of {path}"))
            : null;
        (_prefix, _suffix) = Template(root["post_processor"]);
        if (!config["add_bos_token"].IsNull)
            _prefix = config["add_bos_token"].Bool(false) ? [Id(config["bos_token"]) ?? throw config["bos_token"].Error("is missing but add_bos_token is true")] : [];
        if (!config["add_eos_token"].IsNull)
            _suffix = config["add_eos_token"].Bool(false) ? [Id(config["eos_token"]) ?? throw config["eos_token"].Error("is missing but add_eos_token is true")] : [];
        EosIds = Id(config["eos_token"]) is { } eos ? [eos] : [];
    }

    /// <summary>Reads tokenizer.json and, when it lies beside it, tokenizer_config.json.</summary>
    public static HfTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var tokenizer = ReadJson(path) ?? throw new ModelFormatException($"{path}: cannot read tokenizer (file not found)");
        var configPath = System.IO.Path.Combine(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!, "tokenizer_config.json");
        using var config = ReadJson(configPath);
        var root = new JsonField(path, "tokenizer", tokenizer.RootElement);
        if (root.Value.ValueKind != JsonValueKind.Object) throw new ModelFormatException($"{path}: not a JSON object");
        return new HfTokenizer(path, root, new JsonField(configPath, "tokenizer_config", config?.RootElement ?? default));
    }

    private static JsonDocument? ReadJson(string path) =>
        File.Exists(path) ? InputFile.ParseJson(path, InputFile.Reading(path, () => File.ReadAllBytes(path))) : null;

    /// <summary>A bos_token/eos_token value: a string, an AddedToken object with "content", or null.</summary>
    private static string? TokenContent(JsonField field) =>
        field.IsNull ? null : field.Value.ValueKind == JsonValueKind.Object ? field["content"].String() : field.String();

    private static string Merge(JsonField merge)
    {
        string[] parts = merge.Value.ValueKind == JsonValueKind.Array
            ? merge.Items().Select(part => part.String()).ToArray()
            : merge.String().Split(' ');
        if (parts.Length != 2) throw merge.Error("is not a pair of tokens");
        if (parts.Any(p => p.Contains(' '))) throw merge.Error("has a token containing a space, which Microsoft.ML.Tokenizers' merges cannot express");
        return $"{parts[0]} {parts[1]}";
    }

    /// <summary>The ids the post-processor puts before and after a single text (TemplateProcessing;
    /// ByteLevel adds none).</summary>
    private static (int[] Prefix, int[] Suffix) Template(JsonField json)
    {
        if (json.IsNull) return ([], []);
        switch (json.Type)
        {
            case "ByteLevel": return ([], []);
            case "Sequence":
                var parts = json["processors"].Items().Select(Template).ToList();
                return (parts.SelectMany(p => p.Prefix).ToArray(), parts.SelectMany(p => p.Suffix).ToArray());
            case "TemplateProcessing":
                List<int> prefix = [], suffix = [];
                var sawSequence = false;
                foreach (var item in json["single"].Items())
                {
                    if (!item["Sequence"].IsNull) { sawSequence = true; continue; }
                    var name = item["SpecialToken"]["id"].String();
                    var ids = json["special_tokens"][name]["ids"].Items().Select(id => id.Int());
                    (sawSequence ? suffix : prefix).AddRange(ids);
                }
                return (prefix.ToArray(), suffix.ToArray());
            default:
                throw json.Error($"type '{json.Type}' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
        }
    }

    /// <inheritdoc/>
    public override int[] Encode(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (addSpecialTokens) ids.AddRange(_prefix);
        foreach (var (piece, rawId, rawStart) in _raw.Split(text))
        {
            if (rawId is { } id)
            {
                ids.Add(id);
                continue;
            }
            var normalized = _normalizer is null ? piece : _normalizer(piece);
            foreach (var (part, addedId, start) in _normalized.Split(normalized))
            {
                if (addedId is { } added) ids.Add(added);
                else
                    foreach (var word in _preTokenizer is null ? [part] : _preTokenizer(part, rawStart == 0 && start == 0))
                        EncodeWord(word, ids);
            }
        }
        if (addSpecialTokens) ids.AddRange(_suffix);
        return ids.ToArray();
    }

    /// <summary>The BPE model on one pre-tokenized word. Characters outside the vocabulary never take
    /// part in a merge, so the word is cut at them: each run of known characters goes through the
    /// merges, each unknown character becomes its UTF-8 byte pieces (byte fallback) or unk.</summary>
    private void EncodeWord(string word, List<int> ids)
    {
        if (word.Length == 0) return;
        if (_ignoreMerges && _vocab.TryGetValue(word, out var whole))
        {
            ids.Add(whole);
            return;
        }
        var runStart = 0;
        var lastWasUnknown = false;
        for (var i = 0; i < word.Length;)
        {
            var length = char.IsSurrogatePair(word, i) ? 2 : 1;
            var character = word.Substring(i, length);
            i += length;
            if (_vocab.ContainsKey(character))
            {
                lastWasUnknown = false;
                continue;
            }
            if (i - length > runStart) ids.AddRange(_bpe.EncodeToIds(word[runStart..(i - length)]));
            runStart = i;
            var bytes = System.Text.Encoding.UTF8.GetBytes(character);
            if (_byteIds is not null && bytes.All(b => _byteIds[b] >= 0))
            {
                ids.AddRange(bytes.Select(b => _byteIds[b]));
                lastWasUnknown = false;
            }
            else if (_unknownId is { } unk)
            {
                if (!(lastWasUnknown && _fuseUnknown)) ids.Add(unk);
                lastWasUnknown = true;
            }
        }
        if (runStart < word.Length) ids.AddRange(_bpe.EncodeToIds(word[runStart..]));
    }

    /// <summary>Decodes as the decoder chain does, skipping special tokens; leading spaces the chain
    /// strips are stripped from the start of the stream.</summary>
    public override TokenStream NewStream() => new Stream(this);

    private sealed class Stream(HfTokenizer owner) : TokenStream
    {
        private int _toStrip = owner._leadingSpacesToStrip;

        /// <inheritdoc/>
        public override string Append(int id)
        {
            if ((uint)id >= (uint)owner.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the {owner.VocabSize}-token vocabulary of {owner.Path}");
            ReadOnlySpan<byte> bytes = owner._surface[id];
            while (_toStrip > 0 && bytes.Length > 0)
            {
                if (bytes[0] == (byte)' ')
                {
                    bytes = bytes[1..];
                    _toStrip--;
                }
                else _toStrip = 0;
            }
            return Emit(bytes);
        }
    }

    /// <summary>One entry of added_tokens.</summary>
    private sealed record AddedToken(int Id, string Content, bool Special, bool Normalized, bool LeftStrip, bool RightStrip, bool SingleWord)
    {
        public static AddedToken Parse(JsonField json) => new(json["id"].Int(), json["content"].String(), json["special"].Bool(false),
            json["normalized"].Bool(!json["special"].Bool(false)), json["lstrip"].Bool(false), json["rstrip"].Bool(false), json["single_word"].Bool(false));
    }

    /// <summary>
    /// Finds added tokens in text as Hugging Face does: leftmost-longest matches of each token's content
    /// (normalized by the normalizer for tokens matched in normalized text), a match of a single_word
    /// token only between non-word characters, and lstrip/rstrip taking the whitespace beside a match.
    /// </summary>
    private sealed class AddedTokens
    {
        private readonly List<(string Pattern, AddedToken Token)> _patterns;

        public AddedTokens(IEnumerable<AddedToken> tokens, Func<string, string>? normalizer = null) =>
            _patterns = tokens.Select(t => (normalizer is null ? t.Content : normalizer(t.Content), t))
                .Where(p => p.Item1.Length > 0).OrderByDescending(p => p.Item1.Length).ToList();

        /// <summary>The text cut into (piece, null, start) stretches and (content, id, start) matches.</summary>
        public IEnumerable<(string Text, int? Id, int Start)> Split(string text)
        {
            var at = 0;
            for (var i = 0; i < text.Length && _patterns.Count > 0; i++)
            {
                foreach (var (pattern, token) in _patterns)
                {
                    if (string.CompareOrdinal(text, i, pattern, 0, pattern.Length) != 0) continue;
                    var end = i + pattern.Length;
                    if (token.SingleWord && (i > 0 && IsWordCharacter(text[i - 1]) || end < text.Length && IsWordCharacter(text[end]))) continue;
                    var start = i;
                    if (token.LeftStrip) while (start > at && char.IsWhiteSpace(text[start - 1])) start--;
                    if (token.RightStrip) while (end < text.Length && char.IsWhiteSpace(text[end])) end++;
                    if (start > at) yield return (text[at..start], null, at);
                    yield return (text[start..end], token.Id, start);
                    at = end;
                    i = end - 1;
                    break;
                }
            }
            if (at < text.Length) yield return (text[at..], null, at);
        }

        private static bool IsWordCharacter(char c) => char.IsLetterOrDigit(c) || c == '_';
    }
}
