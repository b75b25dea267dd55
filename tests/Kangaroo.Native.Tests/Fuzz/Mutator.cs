using System.Text;

namespace Kangaroo.Native.Tests.Fuzz;

/// <summary>
/// Seeded mutations of a real file: truncation, bit and byte flips, extreme integers written over
/// binary fields, numbers in JSON text replaced by extreme literals (a safetensors header keeps a
/// consistent length, so the mutation reaches the checks behind it), and inserted, duplicated or
/// deleted ranges. Half of the positions fall in the file's "hot" region (its header), where a
/// mutation changes structure rather than weights.
/// </summary>
public sealed class Mutator(int seed)
{
    private static readonly long[] ExtremeIntegers =
        [0, -1, 1, 2, 7, 255, 65535, 65536, int.MaxValue, int.MinValue, uint.MaxValue, 1L << 31, 1L << 32, long.MaxValue, long.MinValue];

    private static readonly string[] ExtremeNumbers =
        ["0", "-1", "1", "2147483647", "2147483648", "-2147483648", "4294967296", "9223372036854775807", "-9223372036854775809", "1e308", "1e999", "0.5", "-0"];

    private readonly Random _random = new(seed);

    /// <summary>The file's format, for where mutations land: JSON numbers are replaced in a
    /// safetensors header, or anywhere in a JSON file.</summary>
    public enum Layout { Binary, SafeTensors, Json }

    public (byte[] Bytes, string What) Mutate(byte[] original, Layout layout, int hotBytes)
    {
        var bytes = original.ToList();
        var what = new List<string>();
        var count = 1 + _random.Next(3);
        for (var m = 0; m < count && bytes.Count > 0; m++)
        {
            var hot = Math.Min(hotBytes, bytes.Count);
            switch (_random.Next(7))
            {
                case 0:
                    var keep = _random.Next(2) == 0 ? _random.Next(Math.Min(bytes.Count, hot + 16)) : _random.Next(bytes.Count);
                    bytes.RemoveRange(keep, bytes.Count - keep);
                    what.Add($"truncate to {keep}");
                    break;
                case 1:
                    for (var k = 1 + _random.Next(8); k > 0; k--)
                    {
                        var at = Position(bytes.Count, hot);
                        bytes[at] ^= (byte)(1 << _random.Next(8));
                        what.Add($"flip bit at {at}");
                    }
                    break;
                case 2:
                    var where = Position(bytes.Count, hot);
                    bytes[where] = (byte)_random.Next(256);
                    what.Add($"byte at {where}");
                    break;
                case 3 when layout == Layout.Binary || _random.Next(4) == 0:
                    var value = ExtremeIntegers[_random.Next(ExtremeIntegers.Length)];
                    var width = _random.Next(2) == 0 ? 4 : 8;
                    var offset = Position(bytes.Count, hot) & ~3;
                    var encoded = width == 4 ? BitConverter.GetBytes((int)value) : BitConverter.GetBytes(value);
                    for (var i = 0; i < width && offset + i < bytes.Count; i++) bytes[offset + i] = encoded[i];
                    what.Add($"int{width * 8} {value} at {offset}");
                    break;
                case 3:
                    what.Add(ReplaceNumber(bytes, layout));
                    break;
                case 4:
                    var insertAt = Position(bytes.Count, hot);
                    byte[] inserted;
                    if (_random.Next(2) == 0)
                    {
                        inserted = new byte[1 + _random.Next(64)];
                        _random.NextBytes(inserted);
                    }
                    else
                    {
                        var from = _random.Next(bytes.Count);
                        inserted = bytes.Skip(from).Take(1 + _random.Next(256)).ToArray();
                    }
                    bytes.InsertRange(insertAt, inserted);
                    what.Add($"insert {inserted.Length} at {insertAt}");
                    break;
                default:
                    var deleteAt = Position(bytes.Count, hot);
                    var length = Math.Min(1 + _random.Next(256), bytes.Count - deleteAt);
                    bytes.RemoveRange(deleteAt, length);
                    what.Add($"delete {length} at {deleteAt}");
                    break;
            }
        }
        return (bytes.ToArray(), string.Join(", ", what));
    }

    /// <summary>JSON escapes of characters that break or disguise a line (decoded inside a JSON string).</summary>
    private static readonly byte[][] JsonEscapes =
    [
        @"\n"u8.ToArray(), @"\r\n"u8.ToArray(), @"\t"u8.ToArray(), @"\u0000"u8.ToArray(), @"\u001b[31m"u8.ToArray(), @"\u0085"u8.ToArray(),
        @"\u2028"u8.ToArray(), @"\u202e"u8.ToArray(), @"\ufffd"u8.ToArray(), @"\ud800"u8.ToArray(), @"\udc00x"u8.ToArray(),
    ];

    /// <summary>Bytes that break or disguise a line in an error message: newlines, control characters
    /// (a terminal escape among them), invalid UTF-8, Unicode separators and a bidi override, and the
    /// JSON escapes of such characters (decoded inside a JSON string).</summary>
    private static readonly byte[][] HostileBytes =
    [
        "\n"u8.ToArray(), "\r\n"u8.ToArray(), "\r"u8.ToArray(), "\t"u8.ToArray(), "\u001b[2J"u8.ToArray(), [0], [7], [0x7f],
        [0xff], [0xfe, 0xff], [0xc3], [0x80], [0xed, 0xa0, 0x80], // invalid UTF-8 (a lone lead, a lone continuation, an encoded surrogate)
        "\u0085"u8.ToArray(), "\u2028"u8.ToArray(), "\u2029"u8.ToArray(), "\u202e"u8.ToArray(), "\ufeff"u8.ToArray(),
        .. JsonEscapes,
    ];

    /// <summary>A mutation aimed at error messages: <see cref="HostileBytes"/> (sometimes with a long
    /// run of text, to be cut short) inserted, most often just after a quote so that they land inside a
    /// string, or written over a binary file's bytes; a third of the time one of <see cref="Mutate"/>'s
    /// mutations follows. A safetensors header keeps a consistent length, so the bytes reach the checks
    /// behind it (tensor names, metadata).</summary>
    public (byte[] Bytes, string What) MutateHostile(byte[] original, Layout layout, int hotBytes)
    {
        var bytes = original.ToList();
        var what = new List<string>();
        for (var m = 1 + _random.Next(2); m > 0 && bytes.Count > 0; m--)
        {
            var payload = new List<byte>();
            // In JSON, mostly escapes: raw control bytes make the text invalid JSON, escapes reach the strings.
            var escapesOnly = layout != Layout.Binary && _random.Next(3) > 0;
            for (var k = 1 + _random.Next(3); k > 0; k--)
                payload.AddRange(escapesOnly ? JsonEscapes[_random.Next(JsonEscapes.Length)] : HostileBytes[_random.Next(HostileBytes.Length)]);
            if (_random.Next(6) == 0) payload.InsertRange(_random.Next(payload.Count + 1), Enumerable.Range(0, 300 + _random.Next(3000)).Select(i => (byte)('a' + i % 26)));
            var (start, end) = (0, Math.Min(hotBytes, bytes.Count));
            if (layout == Layout.SafeTensors)
            {
                var headerLength = bytes.Count >= 8 ? BitConverter.ToInt64(bytes.Take(8).ToArray()) : -1;
                if (headerLength <= 0 || headerLength > bytes.Count - 8) return (bytes.ToArray(), "header length implausible");
                (start, end) = (8, 8 + (int)headerLength);
            }
            var quotes = Enumerable.Range(start, end - start).Where(i => bytes[i] is (byte)'"' or (byte)'\'').ToList();
            var at = quotes.Count > 0 && _random.Next(3) > 0 ? quotes[_random.Next(quotes.Count)] + 1 : start + _random.Next(end - start + 1);
            if (layout == Layout.Binary && _random.Next(2) == 0)
            {
                for (var i = 0; i < payload.Count && at + i < bytes.Count; i++) bytes[at + i] = payload[i];
                what.Add($"write {payload.Count} hostile bytes at {at}");
            }
            else
            {
                bytes.InsertRange(at, payload);
                what.Add($"insert {payload.Count} hostile bytes at {at}");
                if (layout == Layout.SafeTensors)
                {
                    var newLength = BitConverter.GetBytes((long)(end - start + payload.Count));
                    for (var i = 0; i < 8; i++) bytes[i] = newLength[i];
                }
            }
        }
        if (_random.Next(3) > 0 || bytes.Count == 0) return (bytes.ToArray(), string.Join(", ", what));
        var (mutated, more) = Mutate(bytes.ToArray(), layout, hotBytes);
        return (mutated, string.Join(", ", what) + ", " + more);
    }

    private int Position(int length, int hot) => _random.Next(2) == 0 && hot > 0 ? _random.Next(hot) : _random.Next(length);

    /// <summary>Replaces one number of the JSON text (all of a .json file, or a safetensors header,
    /// whose 8-byte length is then rewritten) by an extreme literal.</summary>
    private string ReplaceNumber(List<byte> bytes, Layout layout)
    {
        var start = 0;
        var end = bytes.Count;
        if (layout == Layout.SafeTensors)
        {
            if (bytes.Count < 8) return "no header";
            var headerLength = BitConverter.ToInt64(bytes.Take(8).ToArray());
            if (headerLength <= 0 || headerLength > bytes.Count - 8) return "header length implausible";
            (start, end) = (8, 8 + (int)headerLength);
        }
        var text = Encoding.Latin1.GetString(bytes.Skip(start).Take(end - start).ToArray());
        var numbers = System.Text.RegularExpressions.Regex.Matches(text, "-?[0-9]+");
        if (numbers.Count == 0) return "no number";
        var match = numbers[_random.Next(numbers.Count)];
        var replacement = ExtremeNumbers[_random.Next(ExtremeNumbers.Length)];
        bytes.RemoveRange(start + match.Index, match.Length);
        bytes.InsertRange(start + match.Index, Encoding.Latin1.GetBytes(replacement));
        if (layout == Layout.SafeTensors)
        {
            var newLength = BitConverter.GetBytes((long)(end - start - match.Length + replacement.Length));
            for (var i = 0; i < 8; i++) bytes[i] = newLength[i];
        }
        return $"number {match.Value} -> {replacement}";
    }
}
