using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Kangaroo.Native.Templates;

/// <summary>A name or attribute that does not exist: empty when printed, false, iterates as nothing.</summary>
internal sealed record Undefined(string Name);

/// <summary>The object <c>namespace()</c> makes: attributes a loop body can assign with <c>{% set ns.x = ... %}</c>.</summary>
internal sealed class Namespace
{
    public OrderedDictionary<string, object?> Attributes { get; } = [];
}

/// <summary>Arguments of a call, filter or macro: positional, then named.</summary>
internal sealed record Arguments(List<object?> Positional, List<(string Name, object? Value)> Named)
{
    public static readonly Arguments None = new([], []);

    /// <summary>The argument at <paramref name="index"/> or named <paramref name="name"/>, else <paramref name="fallback"/>.</summary>
    public object? Get(int index, string name, object? fallback = null)
    {
        if (TryGetNamed(name, out var value)) return value;
        return index < Positional.Count ? Positional[index] : fallback;
    }

    public bool Has(int index, string name) => index < Positional.Count || TryGetNamed(name, out _);

    public bool TryGetNamed(string name, out object? value)
    {
        foreach (var (key, named) in Named)
        {
            if (key != name) continue;
            value = named;
            return true;
        }
        value = null;
        return false;
    }
}

/// <summary>A callable value: a macro, <c>caller</c>, or a global such as <c>namespace</c> or <c>raise_exception</c>.</summary>
internal sealed record FunctionValue(string Name, Func<Arguments, object?> Invoke);

/// <summary>Template values are plain .NET objects: <c>null</c> (none), <see cref="Undefined"/>, bool, long, double,
/// string, <c>List&lt;object?&gt;</c> (lists and tuples), <c>OrderedDictionary&lt;string, object?&gt;</c> (mappings),
/// <see cref="Namespace"/> and <see cref="FunctionValue"/>. This class holds their Python semantics.</summary>
internal static class TemplateValues
{
    public static bool IsTrue(object? value) => value switch
    {
        null or Undefined => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        ICollection c => c.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? value) => value is long or double or bool;

    public static double ToDouble(object? value) => value switch
    {
        long l => l,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new ChatTemplateException($"expected a number, got {TypeName(value)}"),
    };

    public static string TypeName(object? value) => value switch
    {
        null => "none",
        Undefined u => $"undefined '{u.Name}'",
        bool => "boolean",
        long => "integer",
        double => "float",
        string => "string",
        List<object?> => "list",
        OrderedDictionary<string, object?> => "mapping",
        Namespace => "namespace",
        FunctionValue f => $"function '{f.Name}'",
        _ => value.GetType().Name,
    };

    /// <summary>The text <c>{{ value }}</c> prints: Python's <c>str()</c>, with undefined as empty.</summary>
    public static string ToText(object? value) => value switch
    {
        string s => s,
        Undefined => "",
        _ => Repr(value),
    };

    /// <summary>Python's <c>repr()</c>, as lists and mappings print their items.</summary>
    public static string Repr(object? value) => value switch
    {
        null => "None",
        Undefined => "",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FormatFloat(d),
        string s => s.Contains('\'') && !s.Contains('"') ? $"\"{s}\"" : $"'{s.Replace("\\", "\\\\").Replace("'", "\\'").Replace("\n", "\\n")}'",
        List<object?> list => $"[{string.Join(", ", list.Select(Repr))}]",
        OrderedDictionary<string, object?> map => $"{{{string.Join(", ", map.Select(e => $"{Repr(e.Key)}: {Repr(e.Value)}"))}}}",
        Namespace ns => $"<Namespace {Repr(new OrderedDictionary<string, object?>(ns.Attributes))}>",
        FunctionValue f => $"<function {f.Name}>",
        _ => value.ToString() ?? "",
    };

    /// <summary>Python's float repr: shortest round-trip digits, always with a point or an exponent.</summary>
    public static string FormatFloat(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16) return ((long)d).ToString(CultureInfo.InvariantCulture) + ".0";
        var r = d.ToString("R", CultureInfo.InvariantCulture);
        var e = r.IndexOf('E');
        if (e < 0) return r;
        var exponent = int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
        return $"{r[..e]}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
    }

    public static bool AreEqual(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (Undefined, Undefined) => true,
        (string x, string y) => x == y,
        (List<object?> x, List<object?> y) => x.Count == y.Count && x.Zip(y).All(p => AreEqual(p.First, p.Second)),
        (OrderedDictionary<string, object?> x, OrderedDictionary<string, object?> y) =>
            x.Count == y.Count && x.All(e => y.TryGetValue(e.Key, out var v) && AreEqual(e.Value, v)),
        _ when IsNumber(a) && IsNumber(b) => ToDouble(a) == ToDouble(b),
        _ => ReferenceEquals(a, b),
    };

    /// <summary><c>+ - * / // % **</c> on numbers, <c>+</c> joining strings or lists, <c>*</c> repeating them.</summary>
    public static object? Arithmetic(string op, object? a, object? b)
    {
        switch (op, a, b)
        {
            case ("+", string x, string y): return x + y;
            case ("+", List<object?> x, List<object?> y): return x.Concat(y).ToList();
            case ("*", string x, long n): return string.Concat(Enumerable.Repeat(x, (int)Math.Max(0, n)));
            case ("*", List<object?> x, long n): return Enumerable.Repeat(x, (int)Math.Max(0, n)).SelectMany(l => l).ToList();
        }
        if (!IsNumber(a) || !IsNumber(b)) throw new ChatTemplateException($"unsupported operand types for '{op}': {TypeName(a)} and {TypeName(b)}");
        if (a is not double && b is not double && op != "/")
        {
            long x = a is bool p ? (p ? 1 : 0) : (long)a!, y = b is bool q ? (q ? 1 : 0) : (long)b!;
            if (y == 0 && op is "//" or "%") throw new ChatTemplateException("integer division or modulo by zero");
            switch (op)
            {
                case "+": return x + y;
                case "-": return x - y;
                case "*": return x * y;
                case "//": return (long)Math.Floor((double)x / y);
                case "%": return ((x % y) + y) % y;
                case "**" when y >= 0: return (long)Math.Pow(x, y);
            }
        }
        double u = ToDouble(a), v = ToDouble(b);
        if (v == 0 && op is "/" or "//" or "%") throw new ChatTemplateException("division by zero");
        return op switch
        {
            "+" => u + v,
            "-" => u - v,
            "*" => u * v,
            "/" => u / v,
            "//" => Math.Floor(u / v),
            "%" => u - v * Math.Floor(u / v),
            "**" => Math.Pow(u, v),
            _ => throw new ChatTemplateException($"unsupported operator '{op}'"),
        };
    }

    public static int Compare(object? a, object? b) => (a, b) switch
    {
        (string x, string y) => string.CompareOrdinal(x, y),
        _ when IsNumber(a) && IsNumber(b) => ToDouble(a).CompareTo(ToDouble(b)),
        _ => throw new ChatTemplateException($"cannot compare {TypeName(a)} with {TypeName(b)}"),
    };

    /// <summary>The items a loop or filter iterates: list items, mapping keys, string characters; nothing for undefined.</summary>
    public static List<object?> Iterate(object? value) => value switch
    {
        List<object?> list => list,
        OrderedDictionary<string, object?> map => map.Keys.Cast<object?>().ToList(),
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        Undefined => [],
        _ => throw new ChatTemplateException($"cannot iterate over {TypeName(value)}"),
    };

    public static object? FromJson(JsonElement json) => json.ValueKind switch
    {
        JsonValueKind.Object => ToMap(json.EnumerateObject().Select(p => (p.Name, FromJson(p.Value)))),
        JsonValueKind.Array => json.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.String => json.GetString(),
        JsonValueKind.Number => json.TryGetInt64(out var l) ? (object)l : json.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => null,
    };

    /// <summary>Converts a .NET value (dictionaries, sequences, strings, numbers, JSON) into a template value.</summary>
    public static object? FromClr(object? value) => value switch
    {
        null or string or bool or long or double => value,
        int or short or byte or uint => Convert.ToInt64(value, CultureInfo.InvariantCulture),
        float or decimal => Convert.ToDouble(value, CultureInfo.InvariantCulture),
        JsonElement json => FromJson(json),
        IEnumerable<KeyValuePair<string, object?>> map => ToMap(map.Select(e => (e.Key, FromClr(e.Value)))),
        IDictionary map => ToMap(Entries(map)),
        IEnumerable items => items.Cast<object?>().Select(FromClr).ToList(),
        _ => throw new ArgumentException($"a chat template cannot use a value of type {value.GetType().Name}"),
    };

    private static IEnumerable<(string, object?)> Entries(IDictionary map)
    {
        foreach (DictionaryEntry entry in map) yield return (entry.Key.ToString() ?? "", FromClr(entry.Value));
    }

    public static OrderedDictionary<string, object?> ToMap(IEnumerable<(string Key, object? Value)> entries)
    {
        var map = new OrderedDictionary<string, object?>();
        foreach (var (key, value) in entries) map[key] = value;
        return map;
    }

    /// <summary>Python's <c>json.dumps(value, ensure_ascii=False, indent=indent)</c>, as transformers' <c>tojson</c>.</summary>
    public static string ToJson(object? value, int? indent = null)
    {
        var text = new StringBuilder();
        WriteJson(text, value, indent, 0);
        return text.ToString();
    }

    private static void WriteJson(StringBuilder text, object? value, int? indent, int depth)
    {
        switch (value)
        {
            case null or Undefined: text.Append("null"); break;
            case bool b: text.Append(b ? "true" : "false"); break;
            case long or double: text.Append(Repr(value)); break;
            case string s: WriteJsonString(text, s); break;
            case List<object?> list:
                WriteJsonContainer(text, '[', ']', list.Select(item => (Action)(() => WriteJson(text, item, indent, depth + 1))).ToList(), indent, depth);
                break;
            case OrderedDictionary<string, object?> or Namespace:
                var map = value as OrderedDictionary<string, object?> ?? ((Namespace)value).Attributes;
                WriteJsonContainer(text, '{', '}', map.Select(e => (Action)(() =>
                {
                    WriteJsonString(text, e.Key);
                    text.Append(": ");
                    WriteJson(text, e.Value, indent, depth + 1);
                })).ToList(), indent, depth);
                break;
            default: throw new ChatTemplateException($"cannot convert {TypeName(value)} to JSON");
        }
    }

    private static void WriteJsonContainer(StringBuilder text, char open, char close, List<Action> items, int? indent, int depth)
    {
        text.Append(open);
        if (items.Count == 0)
        {
            text.Append(close);
            return;
        }
        for (var i = 0; i < items.Count; i++)
        {
            if (i > 0) text.Append(indent is null ? ", " : ",");
            if (indent is { } n) text.Append('\n').Append(' ', n * (depth + 1));
            items[i]();
        }
        if (indent is { } m) text.Append('\n').Append(' ', m * depth);
        text.Append(close);
    }

    private static void WriteJsonString(StringBuilder text, string s)
    {
        text.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': text.Append("\\\""); break;
                case '\\': text.Append("\\\\"); break;
                case '\n': text.Append("\\n"); break;
                case '\r': text.Append("\\r"); break;
                case '\t': text.Append("\\t"); break;
                case '\b': text.Append("\\b"); break;
                case '\f': text.Append("\\f"); break;
                case < ' ': text.Append($"\\u{(int)c:x4}"); break;
                default: text.Append(c); break;
            }
        }
        text.Append('"');
    }
}
