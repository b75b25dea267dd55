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
