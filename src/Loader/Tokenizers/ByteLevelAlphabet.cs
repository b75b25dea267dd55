namespace Kangaroo.Native.Loader;

/// <summary>
/// GPT-2's byte-level alphabet: each of the 256 byte values is written as one printable character
/// (printable Latin-1 bytes as themselves, the others as U+0100 upwards in byte order), so a
/// byte-level BPE vocabulary holds only printable strings: a space is 'Ġ', a newline 'Ċ'.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] CharOfByte = Build();
    private static readonly Dictionary<char, byte> ByteOfChar = Enumerable.Range(0, 256).ToDictionary(b => CharOfByte[b], b => (byte)b);

    private static char[] Build()
    {
        var result = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
        {
            var printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            result[b] = (char)(printable ? b : next++);
        }
        return result;
    }

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, one alphabet character per byte.</summary>
    public static string Encode(string text)
    {
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, (chars, source) =>
        {
            for (var i = 0; i < source.Length; i++) chars[i] = CharOfByte[source[i]];
        });
    }

    /// <summary>The bytes a byte-level token stands for; as in Hugging Face's decoder, a token with a
    /// character outside the alphabet (an added token) stands for its own UTF-8 encoding.</summary>
    public static byte[] Decode(string token)
    {
        var bytes = new byte[token.Length];
        for (var i = 0; i < token.Length; i++)
            if (!ByteOfChar.TryGetValue(token[i], out bytes[i])) return System.Text.Encoding.UTF8.GetBytes(token);
        return bytes;
    }
}
