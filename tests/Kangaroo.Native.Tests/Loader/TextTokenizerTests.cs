using System.Text;
using System.Text.Json;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Tests.Loader;

public class TextTokenizerTests
{
    private static readonly string Llama2Model = SharedData.Path("models", "llama2-tokenizer", "tokenizer.model");
    private static readonly string Tok512Model = SharedData.Path("models", "stories260K", "tok512.model");
    private static readonly string Tok512Bin = SharedData.Path("models", "stories260K", "tok512.bin");

    private static readonly Dictionary<string, TextTokenizer> Cache = new();

    private static TextTokenizer Get(string path)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(path, out var tokenizer)) Cache[path] = tokenizer = TextTokenizer.Load(path);
            return tokenizer;
        }
    }

    public static TheoryData<string, string, int[]> GoldenIds()
    {
        var data = new TheoryData<string, string, int[]>();
        foreach (var line in File.ReadLines(SharedData.Path("golden", "tokenizer-ids.jsonl")))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            data.Add(root.GetProperty("tokenizer").GetString()!, root.GetProperty("text").GetString()!,
                root.GetProperty("ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        }
        return data;
    }

    public static TheoryData<string, int[]> GoldenPrompts()
    {
        var data = new TheoryData<string, int[]>();
        foreach (var line in File.ReadLines(SharedData.Path("golden", "stories260K-greedy.jsonl")))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var json = JsonDocument.Parse(line);
            var root = json.RootElement;
            data.Add(root.GetProperty("prompt").GetString()!, root.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(GoldenIds))]
    public void EncodesLikeSpmEncode(string tokenizer, string text, int[] ids)
    {
        var path = SharedData.Path(tokenizer.Split('/'));
        var tok = Get(path);
        Assert.Equal(ids, tok.Encode(text, addBos: false));
        Assert.Equal([tok.BosId, .. ids], tok.Encode(text, addBos: true));
        Assert.Equal(text, tok.Decode(ids));
    }

    /// <summary>The golden records of tok512.model, whose vocabulary tok512.bin (llama2.c's format) also holds.</summary>
    public static TheoryData<string, int[]> Tok512GoldenIds()
    {
        var data = new TheoryData<string, int[]>();
        foreach (var row in GoldenIds())
            if (((string)row[0]).EndsWith("tok512.model", StringComparison.Ordinal)) data.Add((string)row[1], (int[])row[2]);
        Assert.True(data.Count > 0, "no tok512.model records in tokenizer-ids.jsonl");
        return data;
    }

    [Theory]
    [MemberData(nameof(Tok512GoldenIds))]
    public void Tok512BinEncodesLikeTok512Model(string text, int[] ids) =>
        Assert.Equal(ids, Get(Tok512Bin).Encode(text, addBos: false));

    [Theory]
    [MemberData(nameof(GoldenPrompts))]
    public void EncodesPromptsLikeRunC(string prompt, int[] promptIds)
    {
        Assert.Equal(promptIds, Get(Tok512Model).Encode(prompt, addBos: true));
        Assert.Equal(promptIds, Get(Tok512Bin).Encode(prompt, addBos: true));
    }

    [Fact]
    public void EmptyPromptIsJustBos()
    {
        foreach (var path in new[] { Tok512Model, Tok512Bin, Llama2Model })
        {
            Assert.Equal([1], Get(path).Encode("", addBos: true));
            Assert.Empty(Get(path).Encode("", addBos: false));
        }
    }

    [Fact]
    public void SpecialIdsAndVocabulary()
    {
        var llama = Get(Llama2Model);
        Assert.Equal((32000, 1, 2), (llama.VocabSize, llama.BosId, llama.EosId));
        foreach (var tok in new[] { Get(Tok512Model), Get(Tok512Bin) })
            Assert.Equal((512, 1, 2), (tok.VocabSize, tok.BosId, tok.EosId));
        Assert.Equal([15043, 3186], llama.Encode("Hello world", addBos: false));
    }

    [Fact]
    public void Llama2cVocabularyBecomesTheSameModelProto()
    {
        var fromBin = Get(Tok512Bin).Model;
        var fromModel = Get(Tok512Model).Model;
        Assert.Equal(fromModel.Pieces, fromBin.Pieces);
        Assert.Equal(
            (fromModel.ModelType, fromModel.ByteFallback, fromModel.UnknownId, fromModel.BosId, fromModel.EosId, fromModel.AddDummyPrefix, fromModel.RemoveExtraWhitespaces, fromModel.EscapeWhitespaces),
            (fromBin.ModelType, fromBin.ByteFallback, fromBin.UnknownId, fromBin.BosId, fromBin.EosId, fromBin.AddDummyPrefix, fromBin.RemoveExtraWhitespaces, fromBin.EscapeWhitespaces));
        Assert.Equal(PieceType.Control, fromBin.Pieces[1].Type);
        Assert.Equal(PieceType.Unknown, fromBin.Pieces[0].Type);
        Assert.Equal(new SentencePiece("<0xE2>", 0, PieceType.Byte), fromBin.Pieces[3 + 0xE2]);
        // The bytes written for a llama2.c tokenizer parse back to the same model.
        var reparsed = SentencePieceModel.Parse(Get(Tok512Bin).ToModelProto(), "generated");
        Assert.Equal(fromBin.Pieces, reparsed.Pieces);
    }

    [Theory]
    [InlineData("Once upon a time, there was a little girl named Lily.")]
    [InlineData("Ünïcödé: café, naïve, Größe, 東京, 😀 emoji")]
    [InlineData("She said \u2019hi\u2019 \u2014 then left.\nNew line\ttab")]
    [InlineData("  two leading spaces")]
    public void RoundTrips(string text)
    {
        foreach (var path in new[] { Tok512Model, Tok512Bin, Llama2Model })
        {
            var tok = Get(path);
            Assert.Equal(text, tok.Decode(tok.Encode(text, addBos: false)));
            Assert.Equal(text, tok.Decode(tok.Encode(text, addBos: true)));
            // Streaming the BOS-prefixed ids one by one gives the same text (run.c drops the space after BOS).
            var stream = tok.NewStream();
            var streamed = new StringBuilder();
            foreach (var id in tok.Encode(text, addBos: true)) streamed.Append(stream.Append(id));
            Assert.Equal(text, streamed.ToString());
        }
    }

    [Fact]
    public void StreamHoldsBackIncompleteUtf8()
    {
        foreach (var tok in new[] { Get(Tok512Bin), Get(Llama2Model) })
        {
            // U+2019 (E2 80 99) spelled with the three byte-fallback pieces <0xE2><0x80><0x99>.
            var quote = new[] { 0xE2, 0x80, 0x99 }.Select(b => tok.Model.Pieces.ToList().IndexOf(new SentencePiece($"<0x{b:X2}>", 0, PieceType.Byte))).ToArray();
            Assert.Equal([3 + 0xE2, 3 + 0x80, 3 + 0x99], quote);
            int[] ids = [.. tok.Encode("it", addBos: true), .. quote, .. tok.Encode("s", addBos: false)];
            var stream = tok.NewStream();
            var outputs = ids.Select(stream.Append).ToList();
            var first = ids.AsSpan().IndexOf(quote);
            Assert.Equal("", outputs[first]);
            Assert.Equal("", outputs[first + 1]);
            Assert.Equal("\u2019", outputs[first + 2]);
            Assert.Equal("it\u2019 s", string.Concat(outputs));
            Assert.Equal("it\u2019 s", tok.Decode(ids));
            Assert.Equal("", stream.Flush());
        }
    }

    [Fact]
    public void StreamDropsOnlyTheSpaceAfterBos()
    {
        var tok = Get(Tok512Model);
        var ids = tok.Encode("Once upon a time", addBos: false); // [403, 407, 261, 378], " Once" first
        var withBos = tok.NewStream();
        Assert.Equal("", withBos.Append(1));
        Assert.Equal("Once", withBos.Append(ids[0]));
        // A stream that starts mid-text keeps the space (a continuation of a prompt).
        var plain = tok.NewStream();
        Assert.StartsWith(" ", plain.Append(ids[0]) + plain.Append(ids[1]));
        // Emoji split over four byte pieces comes out whole with the last one.
        var emoji = tok.NewStream();
        var pieces = Encoding.UTF8.GetBytes("😀").Select(b => 3 + b).ToArray();
        Assert.Equal(["", "", "", "😀"], pieces.Select(emoji.Append).ToArray());
        // A dangling lead byte is reported as U+FFFD on flush, and an interrupted sequence as U+FFFD at once.
        var broken = tok.NewStream();
        Assert.Equal("", broken.Append(3 + 0xE2));
        Assert.Equal("\uFFFDa", broken.Append(tok.Encode("a", false)[^1]).TrimStart(' ').Replace(" ", ""));
        Assert.Equal("", broken.Append(3 + 0xF0));
        Assert.Equal("\uFFFD", broken.Flush());
        Assert.Throws<ArgumentOutOfRangeException>(() => broken.Append(512));
        Assert.Throws<ArgumentOutOfRangeException>(() => broken.Append(-1));
    }

    [Fact]
    public void DecodeSkipsControlTokens()
    {
        var tok = Get(Tok512Bin);
        var ids = tok.Encode("Lily and Ben", addBos: true).Append(tok.EosId).ToArray();
        Assert.Equal("Lily and Ben", tok.Decode(ids));
    }

    [Fact]
    public void ControlPieceTextInInputIsPlainText()
    {
        foreach (var path in new[] { Tok512Model, Tok512Bin, Llama2Model })
        {
            var tok = Get(path);
            var ids = tok.Encode("a <s> b </s>", addBos: false);
            Assert.DoesNotContain(tok.BosId, ids);
            Assert.DoesNotContain(tok.EosId, ids);
            Assert.Equal("a <s> b </s>", tok.Decode(ids));
        }
    }
}
