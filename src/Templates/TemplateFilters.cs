using System.Globalization;
using System.Text;

namespace Kangaroo.Native.Templates;

/// <summary>Jinja's filters (<c>x | name(args)</c>), tests (<c>x is name</c>) and value access, as chat templates use them.</summary>
internal static class TemplateFilters
{
    public static object? Filter(string name, object? value, Arguments args)
    {
        switch (name)
        {
            case "trim": return TemplateMethods.Strip(TemplateValues.ToText(value), args.Get(0, "chars") as string, start: true, end: true);
            case "length" or "count": return Length(value);
            case "upper": return TemplateValues.ToText(value).ToUpperInvariant();
            case "lower": return TemplateValues.ToText(value).ToLowerInvariant();
            case "capitalize": return TemplateMethods.Capitalize(TemplateValues.ToText(value));
            case "title": return TemplateMethods.Title(TemplateValues.ToText(value));
            case "string": return TemplateValues.ToText(value);
            case "safe": return value;
            case "tojson": return TemplateValues.ToJson(value, args.Get(0, "indent") is long indent ? (int)indent : null);
            case "default" or "d":
                var useDefault = value is Undefined || (TemplateValues.IsTrue(args.Get(1, "boolean", false)) && !TemplateValues.IsTrue(value));
                return useDefault ? args.Get(0, "default_value", "") : value;
            case "join":
                var items = TemplateValues.Iterate(value);
                if (args.Get(1, "attribute") is { } joinAttribute) items = items.Select(item => GetAttributePath(item, joinAttribute)).ToList();
                return string.Join(TemplateValues.ToText(args.Get(0, "d", "")), items.Select(TemplateValues.ToText));
            case "items":
                return value switch
                {
                    OrderedDictionary<string, object?> map => map.Select(e => (object?)new List<object?> { e.Key, e.Value }).ToList(),
                    Undefined => new List<object?>(),
                    _ => throw new ChatTemplateException($"filter 'items' needs a mapping, got {TemplateValues.TypeName(value)}"),
                };
            case "list": return TemplateValues.Iterate(value).ToList();
            case "first": return TemplateValues.Iterate(value) is { Count: > 0 } first ? first[0] : new Undefined("first");
            case "last": return TemplateValues.Iterate(value) is { Count: > 0 } last ? last[^1] : new Undefined("last");
            case "reverse": return value is string s ? new string(s.Reverse().ToArray()) : TemplateValues.Iterate(value).AsEnumerable().Reverse().ToList();
            case "int": return ToInt(value, args.Get(0, "default", 0L));
            case "float": return ToFloat(value, args.Get(0, "default", 0.0));
            case "abs": return value is long l ? (object)Math.Abs(l) : Math.Abs(TemplateValues.ToDouble(value));
            case "replace":
                return TemplateMethods.Replace(TemplateValues.ToText(value), TemplateValues.ToText(args.Get(0, "old")), TemplateValues.ToText(args.Get(1, "new")),
                    args.Get(2, "count") as long? ?? -1);
            case "indent": return Indent(TemplateValues.ToText(value), args);
            case "select" or "reject":
                return Select(value, args, 0, item => item, keep: name == "select");
            case "selectattr" or "rejectattr":
                var attribute = TemplateValues.ToText(args.Get(0, "attribute"));
                return Select(value, args, 1, item => GetAttributePath(item, attribute), keep: name == "selectattr");
            case "map": return Map(value, args);
            case "sort":
                return Sorted(TemplateValues.Iterate(value), item => SortKey(item, args.Get(2, "attribute"), args.Get(1, "case_sensitive")),
                    TemplateValues.IsTrue(args.Get(0, "reverse", false)));
            case "dictsort":
                var byValue = TemplateValues.ToText(args.Get(1, "by", "key")) == "value";
                return Sorted(TemplateValues.Iterate(Filter("items", value, Arguments.None)), entry => SortKey(((List<object?>)entry!)[byValue ? 1 : 0], null, args.Get(0, "case_sensitive")),
                    TemplateValues.IsTrue(args.Get(2, "reverse", false)));
            case "unique":
                return TemplateValues.Iterate(value).DistinctBy(item => TemplateValues.Repr(SortKey(item, args.Get(1, "attribute"), args.Get(0, "case_sensitive")))).ToList();
            case "sum":
                var terms = TemplateValues.Iterate(value).Select(item => args.Get(0, "attribute") is { } sumAttribute ? GetAttributePath(item, sumAttribute) : item);
                return terms.Aggregate(args.Get(1, "start", 0L), (total, term) => TemplateValues.Arithmetic("+", total, term));
            case "min" or "max":
                var extremes = Sorted(TemplateValues.Iterate(value), item => SortKey(item, args.Get(1, "attribute"), args.Get(0, "case_sensitive")), reverse: name == "max");
                return extremes.Count > 0 ? extremes[0] : new Undefined(name);
            default: throw new ChatTemplateException($"unsupported filter '{name}'");
        }
    }

    public static bool Test(string name, object? value, List<object?> args)
    {
        object? Arg() => args.Count > 0 ? args[0] : throw new ChatTemplateException($"test '{name}' needs an argument");
        return name switch
        {
            "defined" => value is not Undefined,
            "undefined" => value is Undefined,
            "none" => value is null,
            "true" => value is true,
            "false" => value is false,
            "boolean" => value is bool,
            "string" => value is string,
            "number" => value is long or double,
            "integer" => value is long,
            "float" => value is double,
            "mapping" => value is OrderedDictionary<string, object?>,
            "sequence" => value is string or List<object?> or OrderedDictionary<string, object?>,
            "iterable" => value is string or List<object?> or OrderedDictionary<string, object?>,
            "callable" => value is FunctionValue,
            "lower" => value is string lower && lower == lower.ToLowerInvariant(),
            "upper" => value is string upper && upper == upper.ToUpperInvariant(),
            "odd" => value is long odd && odd % 2 != 0,
            "even" => value is long even && even % 2 == 0,
            "divisibleby" => value is long n && Arg() is long d && d != 0 && n % d == 0,
            "eq" or "equalto" or "==" => TemplateValues.AreEqual(value, Arg()),
            "ne" or "!=" => !TemplateValues.AreEqual(value, Arg()),
            "lt" or "lessthan" or "<" => TemplateValues.Compare(value, Arg()) < 0,
            "le" or "<=" => TemplateValues.Compare(value, Arg()) <= 0,
            "gt" or "greaterthan" or ">" => TemplateValues.Compare(value, Arg()) > 0,
            "ge" or ">=" => TemplateValues.Compare(value, Arg()) >= 0,
            "in" => Contains(Arg(), value),
            "sameas" => Arg() is var other && (value is null or bool || other is null or bool ? Equals(value, other) : ReferenceEquals(value, other)),
            _ => throw new ChatTemplateException($"unsupported test '{name}'"),
        };
    }

    /// <summary><c>target.name</c>: a mapping's item or a namespace's attribute; undefined where there is none (as Jinja, also on none).</summary>
    public static object? GetAttribute(object? target, string name) => target switch
    {
        OrderedDictionary<string, object?> map => map.TryGetValue(name, out var value) ? value : new Undefined(name),
        Namespace ns => ns.Attributes.TryGetValue(name, out var value) ? value : new Undefined(name),
        _ => new Undefined(name),
    };

    /// <summary><c>target[index]</c>: Python indexing, negative indices from the end; undefined when out of range.</summary>
    public static object? GetItem(object? target, object? index)
    {
        switch (target, index)
        {
            case (OrderedDictionary<string, object?> or Namespace, _): return index is string key ? GetAttribute(target, key) : new Undefined($"[{TemplateValues.ToText(index)}]");
            case (List<object?> list, long i): return i < list.Count && i >= -list.Count ? list[(int)(i < 0 ? i + list.Count : i)] : new Undefined($"[{i}]");
            case (string s, long i): return i < s.Length && i >= -s.Length ? s[(int)(i < 0 ? i + s.Length : i)].ToString() : new Undefined($"[{i}]");
            case (Undefined or null, _): return new Undefined($"[{TemplateValues.ToText(index)}]");
            default: throw new ChatTemplateException($"cannot index {TemplateValues.TypeName(target)} with {TemplateValues.TypeName(index)}");
        }
    }

    /// <summary><c>target[start:stop:step]</c> on a list or string, as Python slices.</summary>
    public static object? Slice(object? target, long? start, long? stop, long? step)
    {
        var items = target switch
        {
            List<object?> list => list,
            string s => s.Select(c => (object?)c.ToString()).ToList(),
            _ => throw new ChatTemplateException($"cannot slice {TemplateValues.TypeName(target)}"),
        };
        var by = step ?? 1;
        if (by == 0) throw new ChatTemplateException("slice step cannot be zero");
        long count = items.Count;
        long Clamp(long? bound, long fallback)
        {
            if (bound is not { } b) return fallback;
            if (b < 0) b += count;
            return by > 0 ? Math.Clamp(b, 0, count) : Math.Clamp(b, -1, count - 1);
        }
        var from = Clamp(start, by > 0 ? 0 : count - 1);
        var to = Clamp(stop, by > 0 ? count : -1);
        var result = new List<object?>();
        for (var i = from; by > 0 ? i < to : i > to; i += by) result.Add(items[(int)i]);
        return target is string ? string.Concat(result) : result;
    }

    /// <summary><c>item in container</c>: a substring, a list element or a mapping key; nothing is in undefined.</summary>
    public static bool Contains(object? container, object? item) => container switch
    {
        string s => item is string part ? s.Contains(part, StringComparison.Ordinal) : throw new ChatTemplateException($"'in <string>' needs a string, got {TemplateValues.TypeName(item)}"),
        List<object?> list => list.Any(x => TemplateValues.AreEqual(x, item)),
        OrderedDictionary<string, object?> map => item is string key && map.ContainsKey(key),
        Undefined => false,
        _ => throw new ChatTemplateException($"cannot test membership in {TemplateValues.TypeName(container)}"),
    };

    private static long Length(object? value) => value switch
    {
        string s => s.EnumerateRunes().Count(),
        List<object?> list => list.Count,
        OrderedDictionary<string, object?> map => map.Count,
        Namespace ns => ns.Attributes.Count,
        Undefined => 0,
        _ => throw new ChatTemplateException($"{TemplateValues.TypeName(value)} has no length"),
    };

    private static readonly Comparer<object?> Ordering = Comparer<object?>.Create(TemplateValues.Compare);

    /// <summary>A stable sort, as Python's (equal items keep their order, also when reversed).</summary>
    private static List<object?> Sorted(IEnumerable<object?> items, Func<object?, object?> key, bool reverse) =>
        (reverse ? items.OrderByDescending(key, Ordering) : items.OrderBy(key, Ordering)).ToList();

    /// <summary>What sort, unique, min and max compare: the item or its attribute, strings in lower case unless case sensitive.</summary>
    private static object? SortKey(object? item, object? attribute, object? caseSensitive)
    {
        var key = attribute is null ? item : GetAttributePath(item, attribute);
        return key is string s && !TemplateValues.IsTrue(caseSensitive) ? s.ToLowerInvariant() : key;
    }

    /// <summary>An attribute, or a dotted path of them (<c>selectattr('function.name')</c>).</summary>
    private static object? GetAttributePath(object? item, object? path)
    {
        foreach (var part in TemplateValues.ToText(path).Split('.'))
            item = long.TryParse(part, out var index) ? GetItem(item, index) : GetAttribute(item, part);
        return item;
    }

    /// <summary>select/reject and their attribute forms: the test named at <paramref name="testAt"/> (truthiness without one).</summary>
    private static List<object?> Select(object? value, Arguments args, int testAt, Func<object?, object?> subject, bool keep)
    {
        var test = args.Positional.Count > testAt ? TemplateValues.ToText(args.Positional[testAt]) : null;
        var testArgs = args.Positional.Skip(testAt + 1).ToList();
        return TemplateValues.Iterate(value).Where(item =>
        {
            var x = subject(item);
            return (test is null ? TemplateValues.IsTrue(x) : Test(test, x, testArgs)) == keep;
        }).ToList();
    }

    /// <summary><c>map(attribute='name', default=...)</c> or <c>map('filter', args...)</c>.</summary>
    private static List<object?> Map(object? value, Arguments args)
    {
        var items = TemplateValues.Iterate(value);
        if (args.TryGetNamed("attribute", out var attribute))
        {
            args.TryGetNamed("default", out var fallback);
            return items.Select(item => GetAttributePath(item, attribute) is var x && x is Undefined && fallback is not null ? fallback : x).ToList();
        }
        if (args.Positional.Count == 0) throw new ChatTemplateException("filter 'map' needs a filter name or attribute=");
        var filter = TemplateValues.ToText(args.Positional[0]);
        var rest = new Arguments(args.Positional.Skip(1).ToList(), args.Named);
        return items.Select(item => Filter(filter, item, rest)).ToList();
    }

    private static object? ToInt(object? value, object? fallback) => value switch
    {
        bool b => b ? 1L : 0L,
        long => value,
        double d => (long)Math.Truncate(d),
        string s when long.TryParse(s.Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l) => l,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => (long)Math.Truncate(d),
        _ => fallback,
    };

    private static object? ToFloat(object? value, object? fallback) => value switch
    {
        long or bool or double => TemplateValues.ToDouble(value),
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => d,
        _ => fallback,
    };

    /// <summary>Jinja's <c>indent(width=4, first=False, blank=False)</c>: every line after the first (and the first
    /// with <c>first</c>) gains the indent; blank lines only with <c>blank</c>.</summary>
    private static string Indent(string text, Arguments args)
    {
        var width = args.Get(0, "width", 4L);
        var indent = width as string ?? new string(' ', (int)(width as long? ?? 4));
        var first = TemplateValues.IsTrue(args.Get(1, "first", false));
        var blank = TemplateValues.IsTrue(args.Get(2, "blank", false));
        var lines = TemplateMethods.SplitLines(text + "\n");
        var result = new StringBuilder(lines.Count > 0 ? lines[0] : "");
        foreach (var line in lines.Skip(1)) result.Append('\n').Append(blank || line.Length > 0 ? indent + line : line);
        return first ? indent + result : result.ToString();
    }
}
