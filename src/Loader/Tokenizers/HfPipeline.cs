using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Kangaroo.Native.Loader;

/// <summary>Reading a field of tokenizer.json; every failure names the file and the field.</summary>
internal sealed record JsonField(string File, string Name, JsonElement Value)
{
    public ModelFormatException Error(string problem) => new($"{File}: {Name} {problem}");

    public bool IsNull => Value.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined;

    public JsonField this[string property] =>
        new(File, $"{Name}.{property}", Value.ValueKind == JsonValueKind.Object && Value.TryGetProperty(property, out var v) ? v : default);

    public string Type => this["type"].String();

    public string String() => Value.ValueKind == JsonValueKind.String ? Value.GetString()! : throw Error("is not a string");

    public string? StringOrNull() => IsNull ? null : String();

    public bool Bool(bool fallback) =>
        IsNull ? fallback : Value.ValueKind is JsonValueKind.True or JsonValueKind.False ? Value.GetBoolean() : throw Error("is not true or false");

    public int Int() => Value.ValueKind == JsonValueKind.Number && Value.TryGetInt32(out var v) ? v : throw Error("is not an integer");

    public double Number() => Value.ValueKind == JsonValueKind.Number ? Value.GetDouble() : throw Error("is not a number");

    public IEnumerable<JsonField> Items() => Value.ValueKind == JsonValueKind.Array
        ? Value.EnumerateArray().Select((item, i) => new JsonField(File, $"{Name}[{i}]", item))
        : throw Error("is not a list");

    public IEnumerable<(string Key, JsonField Field)> Properties() => Value.ValueKind == JsonValueKind.Object
        ? Value.EnumerateObject().Select(p => (p.Name, new JsonField(File, $"{Name}.{p.Name}", p.Value)))
        : throw Error("is not an object");

    /// <summary>A Replace or Split pattern: {"String": s} as a literal, {"Regex": r} as a regular expression.</summary>
    public Regex Pattern()
    {
        if (!this["String"].IsNull) return new Regex(Regex.Escape(this["String"].String()), RegexOptions.CultureInvariant);
        try
        {
            return new Regex(this["Regex"].String(), RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw Error($"is not a regular expression .NET can run ({e.Message})");
        }
    }
}

/// <summary>The tokenizer.json normalizers we run: Sequence, Prepend, Replace and the Unicode forms.
/// The Unicode forms are .NET's <see cref="string.Normalize(NormalizationForm)"/>, which under this
/// project's InvariantGlobalization leaves non-ASCII text as it is: text already in NFC (nearly all
/// text) tokenises as in Hugging Face, decomposed input (e + U+0301) can tokenise differently.</summary>
internal static class HfNormalizer
{
    public static Func<string, string>? Parse(JsonField json)
    {
        if (json.IsNull) return null;
        switch (json.Type)
        {
            case "Sequence":
                var steps = json["normalizers"].Items().Select(Parse).OfType<Func<string, string>>().ToArray();
                return text => steps.Aggregate(text, (current, step) => step(current));
            case "Prepend":
                var prefix = json["prepend"].String();
                return text => text.Length == 0 ? text : prefix + text;
            case "Replace":
                var pattern = json["pattern"].Pattern();
                var content = json["content"].String();
                return text => pattern.Replace(text, content.Replace("$", "$$"));
            case "NFC": return text => text.Normalize(NormalizationForm.FormC);
            case "NFD": return text => text.Normalize(NormalizationForm.FormD);
            case "NFKC": return text => text.Normalize(NormalizationForm.FormKC);
            case "NFKD": return text => text.Normalize(NormalizationForm.FormKD);
            default: throw json.Error($"type '{json.Type}' is not supported (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD)");
        }
    }
}

/// <summary>
/// The tokenizer.json pre-tokenizers we run: each splits a piece of text into smaller pieces (the BPE
/// model never merges across pieces). <c>atStart</c> is true for the piece that begins the whole text
/// (Metaspace's prepend_scheme "first" looks at it).
/// </summary>
internal delegate IEnumerable<string> PreTokenizerStep(string piece, bool atStart);

internal static class HfPreTokenizer
{
    /// <summary>GPT-2's split: contractions, letters, digits, other symbols, whitespace.</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    public static PreTokenizerStep? Parse(JsonField json)
    {
        if (json.IsNull) return null;
        switch (json.Type)
        {
            case "Sequence":
                var steps = json["pretokenizers"].Items().Select(Parse).OfType<PreTokenizerStep>().ToArray();
                return (piece, atStart) => steps.Aggregate<PreTokenizerStep, IEnumerable<string>>([piece],
                    (pieces, step) => pieces.SelectMany((p, i) => step(p, atStart && i == 0)).ToList());
            case "ByteLevel":
                var addPrefixSpace = json["add_prefix_space"].Bool(true);
                var split = json["use_regex"].Bool(true) ? new Regex(Gpt2Pattern, RegexOptions.CultureInvariant) : null;
                return (piece, _) =>
                {
                    if (addPrefixSpace && !piece.StartsWith(' ')) piece = " " + piece;
                    return (split is null ? [piece] : Isolate(piece, split, keepMatches: true, keepGaps: true)).Select(ByteLevelAlphabet.Encode);
                };
            case "Split":
                // Isolated keeps matches and the stretches between them as pieces (inverted or not);
                // Removed drops the delimiters: the stretches, or with invert the matches' complement.
                var behavior = json["behavior"].String();
                var invert = json["invert"].Bool(false);
                if (behavior is not ("Isolated" or "Removed"))
                    throw json["behavior"].Error($"'{behavior}' is not supported (supported: Isolated, Removed)");
                var pattern = json["pattern"].Pattern();
                return behavior == "Isolated" ? (piece, _) => Isolate(piece, pattern, keepMatches: true, keepGaps: true)
                    : (piece, _) => Isolate(piece, pattern, keepMatches: invert, keepGaps: !invert);
            case "Digits":
                var digits = new Regex(json["individual_digits"].Bool(false) ? @"\p{N}" : @"\p{N}+", RegexOptions.CultureInvariant);
                return (piece, _) => Isolate(piece, digits, keepMatches: true, keepGaps: true);
            case "Metaspace":
                var replacement = json["replacement"].String();
                var scheme = json["prepend_scheme"].StringOrNull() ?? (json["add_prefix_space"].Bool(true) ? "always" : "never");
                if (scheme is not ("always" or "first" or "never")) throw json["prepend_scheme"].Error($"'{scheme}' is not always, first or never");
                var splitPieces = json["split"].Bool(true);
                return (piece, atStart) =>
                {
                    piece = piece.Replace(" ", replacement);
                    if ((scheme == "always" || (scheme == "first" && atStart)) && !piece.StartsWith(replacement, StringComparison.Ordinal))
                        piece = replacement + piece;
                    return splitPieces ? SplitBefore(piece, replacement) : [piece];
                };
            default:
                throw json.Error($"type '{json.Type}' is not supported (supported: Sequence, ByteLevel, Split, Digits, Metaspace)");
        }
    }

    /// <summary>The matches of <paramref name="pattern"/> and the stretches between them, in order, each kept or dropped.</summary>
    private static List<string> Isolate(string text, Regex pattern, bool keepMatches, bool keepGaps)
    {
        var pieces = new List<string>();
        var at = 0;
        for (var match = pattern.Match(text); match.Success; match = match.NextMatch())
        {
            if (match.Length == 0) continue;
            if (match.Index > at && keepGaps) pieces.Add(text[at..match.Index]);
            if (keepMatches) pieces.Add(match.Value);
            at = match.Index + match.Length;
        }
        if (at < text.Length && keepGaps) pieces.Add(text[at..]);
        return pieces;
    }

    /// <summary>Splits so that each occurrence of <paramref name="delimiter"/> starts a piece.</summary>
    private static List<string> SplitBefore(string text, string delimiter)
    {
        var pieces = new List<string>();
        var start = 0;
        for (var i = text.IndexOf(delimiter, 1, StringComparison.Ordinal); i > 0; i = text.IndexOf(delimiter, i + delimiter.Length, StringComparison.Ordinal))
        {
            if (i > start) pieces.Add(text[start..i]);
            start = i;
        }
        if (start < text.Length) pieces.Add(text[start..]);
        return pieces;
    }
}

/// <summary>
/// The tokenizer.json decoder chain, reduced to what streaming needs: the bytes each token writes
/// (Replace, ByteFallback, ByteLevel, Metaspace applied to the token's own string; Fuse changes
/// nothing when tokens are concatenated) and how many leading spaces the whole text loses (Strip after
/// Fuse, or Metaspace's prefix space).
/// </summary>
internal sealed class HfDecoder
{
    private readonly List<(string From, string To)> _replacements = [];
    private bool _byteFallback;
    private bool _byteLevel;

    public int LeadingSpacesToStrip { get; private set; }

    public HfDecoder(JsonField json)
    {
        if (!json.IsNull) Add(json);
    }

    private void Add(JsonField json)
    {
        switch (json.Type)
        {
            case "Sequence":
                foreach (var step in json["decoders"].Items()) Add(step);
                break;
            case "Replace":
                _replacements.Add((json["pattern"]["String"].String(), json["content"].String()));
                break;
            case "ByteFallback": _byteFallback = true; break;
            case "Fuse": break;
            case "ByteLevel": _byteLevel = true; break;
            case "Strip":
                if (json["content"].String() != " " || json["stop"].Int() != 0)
                    throw json.Error("strips something other than leading spaces, which is not supported");
                LeadingSpacesToStrip = json["start"].Int();
                break;
            case "Metaspace":
                _replacements.Add((json["replacement"].String(), " "));
                var scheme = json["prepend_scheme"].StringOrNull() ?? (json["add_prefix_space"].Bool(true) ? "always" : "never");
                LeadingSpacesToStrip = scheme == "never" ? 0 : 1;
                break;
            default:
                throw json.Error($"type '{json.Type}' is not supported (supported: Sequence, Replace, ByteFallback, Fuse, Strip, ByteLevel, Metaspace)");
        }
    }

    /// <summary>The bytes token string <paramref name="token"/> writes.</summary>
    public byte[] Bytes(string token)
    {
        foreach (var (from, to) in _replacements) token = token.Replace(from, to, StringComparison.Ordinal);
        if (_byteFallback && token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
            return [b];
        return _byteLevel ? ByteLevelAlphabet.Decode(token) : Encoding.UTF8.GetBytes(token);
    }
}
