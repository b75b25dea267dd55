using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Kangaroo.Native.Loader;

/// <summary>
/// Text from input files inside error messages. An error is one line whatever bytes a file holds:
/// control characters (newlines included), Unicode line and paragraph separators, format characters
/// (such as bidi overrides), lone surrogates and U+FFFD (what invalid UTF-8 decodes to) are written
/// as escapes (<c>\n</c>, <c>\x01</c>, <c>\u202E</c>), and quoted text is cut short.
/// </summary>
public static class ErrorText
{
    /// <summary>The most characters of a file's text quoted in a message.</summary>
    public const int QuoteLength = 64;

    /// <summary>The longest message: longer ones keep their start and end (the file and the problem)
    /// and lose their middle.</summary>
    public const int MessageLength = 600;

    /// <summary><paramref name="message"/> as one printable line: escaped, and its middle cut out
    /// when longer than <see cref="MessageLength"/>.</summary>
    public static string OneLine(string message)
    {
        var escaped = Escape(message);
        if (escaped.Length <= MessageLength) return escaped;
        var head = SafeCut(escaped, MessageLength * 2 / 3);
        var tail = escaped[SafeStart(escaped, escaped.Length - (MessageLength - head.Length - 3))..];
        return head + "..." + tail;
    }

    /// <summary>Text from a file, to quote in a message: at most <paramref name="max"/> characters of
    /// it ("..." after when cut), escaped.</summary>
    public static string Quote(string text, int max = QuoteLength) =>
        text.Length <= max ? Escape(text) : Escape(SafeCut(text, max)) + "...";

    /// <summary>A JSON reader's message, which quotes the file's bytes ("'fals...' is an invalid JSON
    /// literal"): the quoted text cut short, all of it escaped.</summary>
    public static string Json(JsonException e)
    {
        var message = e.Message;
        var end = message.LastIndexOf("' is ", StringComparison.Ordinal);
        if (message.StartsWith('\'') && end > 0)
            message = "'" + Quote(message[1..end], 24) + message[end..];
        return OneLine(message);
    }

    /// <summary>An exception's message to embed in another: a JSON reader's as <see cref="Json"/> gives it, others one line.</summary>
    public static string Of(Exception e) => e is JsonException json ? Json(json) : OneLine(e.Message);

    /// <summary>Every character that would break or disguise a line, escaped; the rest unchanged.</summary>
    public static string Escape(string text)
    {
        var i = 0;
        while (i < text.Length && Printable(text, i)) i += char.IsSurrogatePair(text, i) ? 2 : 1;
        if (i == text.Length) return text;
        var result = new StringBuilder(text.Length + 16).Append(text, 0, i);
        while (i < text.Length)
        {
            if (Printable(text, i))
            {
                var length = char.IsSurrogatePair(text, i) ? 2 : 1;
                result.Append(text, i, length);
                i += length;
                continue;
            }
            var c = text[i++];
            result.Append(c switch
            {
                '\n' => @"\n",
                '\r' => @"\r",
                '\t' => @"\t",
                < '\u0100' => $@"\x{(int)c:X2}",
                _ => $@"\u{(int)c:X4}",
            });
        }
        return result.ToString();
    }

    private static bool Printable(string text, int i)
    {
        var c = text[i];
        if (c is >= ' ' and < '\u007f') return true;
        if (char.IsSurrogatePair(text, i)) return CharUnicodeInfo.GetUnicodeCategory(text, i) != UnicodeCategory.Format;
        if (c == '\uFFFD') return false;
        return CharUnicodeInfo.GetUnicodeCategory(c) is not (UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate);
    }

    /// <summary>The first <paramref name="length"/> characters, one fewer where that would split a surrogate pair.</summary>
    private static string SafeCut(string text, int length) =>
        text[..(length > 0 && char.IsHighSurrogate(text[length - 1]) ? length - 1 : length)];

    private static int SafeStart(string text, int start) =>
        start < text.Length && char.IsLowSurrogate(text[start]) ? start + 1 : start;
}
