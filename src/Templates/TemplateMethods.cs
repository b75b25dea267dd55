using System.Globalization;
using System.Text;

namespace Kangaroo.Native.Templates;

/// <summary>The Python methods templates call on strings and mappings (<c>content.strip()</c>, <c>message.get('x')</c>),
/// and the global functions transformers gives templates.</summary>
internal static class TemplateMethods
{
    /// <summary>Calls <c>target.name(args)</c> when <paramref name="target"/> is a string or mapping with that method.</summary>
    public static bool TryCall(object? target, string name, Arguments args, out object? result)
    {
        switch (target)
        {
            case string s:
                result = CallString(s, name, args);
                return true;
            case OrderedDictionary<string, object?> map when name is "items" or "keys" or "values" or "get":
                result = name switch
                {
                    "items" => map.Select(e => (object?)new List<object?> { e.Key, e.Value }).ToList(),
                    "keys" => map.Keys.Cast<object?>().ToList(),
                    "values" => map.Values.ToList(),
                    _ => args.Get(0, "key") is string key && map.TryGetValue(key, out var value) ? value : args.Get(1, "default"),
                };
                return true;
            case List<object?>:
                throw new ChatTemplateException($"unsupported list method '{name}()'");
            default:
                result = null;
                return false;
        }
    }

    private static object? CallString(string s, string name, Arguments args)
    {
        string Text(int index, string parameter) => args.Get(index, parameter) as string
            ?? throw new ChatTemplateException($"str.{name}() needs a string argument '{parameter}'");
        return name switch
        {
            "strip" => Strip(s, args.Get(0, "chars") as string, start: true, end: true),
            "lstrip" => Strip(s, args.Get(0, "chars") as string, start: true, end: false),
            "rstrip" => Strip(s, args.Get(0, "chars") as string, start: false, end: true),
            "upper" => s.ToUpperInvariant(),
            "lower" => s.ToLowerInvariant(),
            "title" => Title(s),
            "capitalize" => Capitalize(s),
            "startswith" => Affixes(args.Get(0, "prefix"), name).Any(p => s.StartsWith(p, StringComparison.Ordinal)),
            "endswith" => Affixes(args.Get(0, "suffix"), name).Any(p => s.EndsWith(p, StringComparison.Ordinal)),
            "split" => Split(s, args.Get(0, "sep") as string, args.Get(1, "maxsplit", -1L) as long? ?? -1),
            "splitlines" => SplitLines(s).Cast<object?>().ToList(),
            "replace" => Replace(s, Text(0, "old"), Text(1, "new"), args.Get(2, "count", -1L) as long? ?? -1),
            "find" => (long)s.IndexOf(Text(0, "sub"), StringComparison.Ordinal),
            "count" => (long)(Text(0, "sub") is var sub && sub.Length > 0 ? (s.Length - s.Replace(sub, "").Length) / sub.Length : s.Length + 1),
            "join" => string.Join(s, TemplateValues.Iterate(args.Get(0, "iterable")).Select(TemplateValues.ToText)),
            _ => throw new ChatTemplateException($"unsupported string method '{name}()'"),
        };
    }

    private static IEnumerable<string> Affixes(object? value, string method) => value switch
    {
        string s => [s],
        List<object?> list => list.Select(TemplateValues.ToText),
        _ => throw new ChatTemplateException($"str.{method}() needs a string or a tuple of strings"),
    };

    /// <summary>Python's strip: whitespace, or any of <paramref name="chars"/>.</summary>
    public static string Strip(string s, string? chars, bool start, bool end)
    {
        var from = 0;
        var to = s.Length;
        bool Strippable(char c) => chars is null ? char.IsWhiteSpace(c) : chars.Contains(c);
        if (start) while (from < to && Strippable(s[from])) from++;
        if (end) while (to > from && Strippable(s[to - 1])) to--;
        return s[from..to];
    }

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's <c>str.title()</c>: a letter after a non-letter is upper case, the others lower case.</summary>
    public static string Title(string s)
    {
        var text = new StringBuilder(s.Length);
        var previousIsLetter = false;
        foreach (var c in s)
        {
            text.Append(previousIsLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            previousIsLetter = char.IsLetter(c);
        }
        return text.ToString();
    }

    public static string Replace(string s, string old, string replacement, long count)
    {
        if (count < 0) return old.Length == 0 ? string.Join(replacement, s.Select(c => c.ToString()).Prepend("").Append("")) : s.Replace(old, replacement, StringComparison.Ordinal);
        var text = new StringBuilder();
        var at = 0;
        for (var n = 0; n < count && old.Length > 0; n++)
        {
            var next = s.IndexOf(old, at, StringComparison.Ordinal);
            if (next < 0) break;
            text.Append(s, at, next - at).Append(replacement);
            at = next + old.Length;
        }
        return text.Append(s, at, s.Length - at).ToString();
    }

    /// <summary>Python's <c>str.split(sep=None, maxsplit=-1)</c>: without a separator, on runs of whitespace.</summary>
    public static List<object?> Split(string s, string? separator, long maxSplit)
    {
        if (separator is "") throw new ChatTemplateException("str.split() with an empty separator");
        var parts = new List<object?>();
        if (separator is not null)
        {
            var at = 0;
            for (var next = s.IndexOf(separator, StringComparison.Ordinal); next >= 0 && (maxSplit < 0 || parts.Count < maxSplit); next = s.IndexOf(separator, at, StringComparison.Ordinal))
            {
                parts.Add(s[at..next]);
                at = next + separator.Length;
            }
            parts.Add(s[at..]);
            return parts;
        }
        var i = 0;
        while (true)
        {
            while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
            if (i == s.Length) return parts;
            if (maxSplit >= 0 && parts.Count == maxSplit)
            {
                parts.Add(Strip(s[i..], null, start: false, end: true));
                return parts;
            }
            var start = i;
            while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
            parts.Add(s[start..i]);
        }
    }

    /// <summary>Python's <c>str.splitlines()</c> (line breaks \n, \r\n and \r).</summary>
    public static List<string> SplitLines(string s)
    {
        var lines = s.Split('\n').Select(l => l.TrimEnd('\r')).ToList();
        if (lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines;
    }

    /// <summary>The functions transformers gives every template.</summary>
    public static IEnumerable<FunctionValue> Globals()
    {
        yield return new FunctionValue("raise_exception", args => throw new ChatTemplateRaisedException(TemplateValues.ToText(args.Get(0, "message"))));
        yield return new FunctionValue("namespace", args =>
        {
            var ns = new Namespace();
            if (args.Positional.FirstOrDefault() is OrderedDictionary<string, object?> initial) foreach (var (key, value) in initial) ns.Attributes[key] = value;
            foreach (var (key, value) in args.Named) ns.Attributes[key] = value;
            return ns;
        });
        yield return new FunctionValue("dict", args => TemplateValues.ToMap(args.Named));
        yield return new FunctionValue("range", args =>
        {
            var bounds = args.Positional.Select(a => a as long? ?? throw new ChatTemplateException("range() needs integers")).ToList();
            var (start, stop, step) = bounds.Count switch
            {
                1 => (0, bounds[0], 1),
                2 => (bounds[0], bounds[1], 1),
                3 => (bounds[0], bounds[1], bounds[2]),
                _ => throw new ChatTemplateException("range() takes 1 to 3 arguments"),
            };
            if (step == 0) throw new ChatTemplateException("range() step cannot be zero");
            var items = new List<object?>();
            for (var i = start; step > 0 ? i < stop : i > stop; i += step) items.Add(i);
            return items;
        });
        yield return new FunctionValue("strftime_now", args => StrftimeNow(TemplateValues.ToText(args.Get(0, "format"))));
    }

    /// <summary>transformers' <c>strftime_now(format)</c>: the local time in Python's strftime codes.</summary>
    private static string StrftimeNow(string format)
    {
        var now = DateTime.Now;
        var text = new StringBuilder();
        for (var i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 == format.Length)
            {
                text.Append(format[i]);
                continue;
            }
            var code = format[++i];
            text.Append(code switch
            {
                'd' => now.ToString("dd", CultureInfo.InvariantCulture),
                'm' => now.ToString("MM", CultureInfo.InvariantCulture),
                'Y' => now.ToString("yyyy", CultureInfo.InvariantCulture),
                'y' => now.ToString("yy", CultureInfo.InvariantCulture),
                'H' => now.ToString("HH", CultureInfo.InvariantCulture),
                'I' => now.ToString("hh", CultureInfo.InvariantCulture),
                'M' => now.ToString("mm", CultureInfo.InvariantCulture),
                'S' => now.ToString("ss", CultureInfo.InvariantCulture),
                'p' => now.ToString("tt", CultureInfo.InvariantCulture),
                'b' => now.ToString("MMM", CultureInfo.InvariantCulture),
                'B' => now.ToString("MMMM", CultureInfo.InvariantCulture),
                'a' => now.ToString("ddd", CultureInfo.InvariantCulture),
                'A' => now.ToString("dddd", CultureInfo.InvariantCulture),
                'j' => now.DayOfYear.ToString("000", CultureInfo.InvariantCulture),
                '%' => "%",
                _ => throw new ChatTemplateException($"unsupported strftime code '%{code}'"),
            });
        }
        return text.ToString();
    }
}
