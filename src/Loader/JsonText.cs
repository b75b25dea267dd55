using System.Text;
using System.Text.Json;

namespace Kangaroo.Native.Loader;

/// <summary>
/// JSON parsing that refuses, as a <see cref="JsonException"/> (which every reader of a file already
/// turns into an error naming the file), what System.Text.Json only notices later: a string whose
/// escapes hold a lone UTF-16 surrogate ("\ud800" without its pair) parses, and then throws
/// InvalidOperationException, naming no file, from the first read of that string.
/// </summary>
public static class JsonText
{
    /// <summary>Checks the strings first: the parser's own duplicate-key check reads property names.</summary>
    public static JsonDocument Parse(ReadOnlyMemory<byte> utf8, JsonDocumentOptions options = default)
    {
        CheckStrings(utf8.Span, options);
        return JsonDocument.Parse(utf8, options);
    }

    /// <summary>Parses <paramref name="text"/>, refusing lone surrogates as the byte overload does.</summary>
    public static JsonDocument Parse(string text, JsonDocumentOptions options = default) =>
        Parse(Encoding.UTF8.GetBytes(text), options);

    /// <summary>Throws <see cref="JsonException"/> where the JSON text <paramref name="utf8"/> is not
    /// valid JSON, or where one of its strings or property names cannot be read as a .NET string.</summary>
    public static void CheckStrings(ReadOnlySpan<byte> utf8, JsonDocumentOptions options = default)
    {
        var reader = new Utf8JsonReader(utf8, new JsonReaderOptions
        {
            AllowTrailingCommas = options.AllowTrailingCommas,
            CommentHandling = options.CommentHandling,
            MaxDepth = options.MaxDepth,
        });
        while (reader.Read())
        {
            if (reader.TokenType is not (JsonTokenType.String or JsonTokenType.PropertyName) || !reader.ValueIsEscaped) continue;
            try
            {
                reader.GetString();
            }
            catch (InvalidOperationException)
            {
                throw new JsonException($"the {(reader.TokenType == JsonTokenType.String ? "string" : "property name")} at byte {reader.TokenStartIndex} " +
                                        @"holds a lone UTF-16 surrogate escape (such as \ud800 without its pair)");
            }
        }
    }
}
