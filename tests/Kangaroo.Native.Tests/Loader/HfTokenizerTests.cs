using System.Text;

namespace Kangaroo.Native.Tests.Loader;

/// <summary>tokenizer.json encoding and decoding against Hugging Face's own library (goldens made with
/// the tokenizers package; HfTokenizers/README.md says how).</summary>
public sealed class HfTokenizerTests
{
    private static readonly string TinyStories = SharedData.Path("models", "TinyStories-656K", "tokenizer.json");
    private static readonly string Folder = Path.Combine(SharedData.RepositoryRoot, "tests", "Kangaroo.Native.Tests", "Loader", "HfTokenizers");

    private static readonly Dictionary<string, HfTokenizer> Cache = new();

    private static HfTokenizer Get(string path)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(path, out var tokenizer)) Cache[path] = tokenizer = HfTokenizer.Load(path);
            return tokenizer;
        }
    }

    private static IEnumerable<JsonElement> Records(string path) =>
        File.ReadLines(path).Where(line => line.Trim().Length > 0).Select(line => JsonDocument.Parse(line).RootElement);

    private static int[] Ids(JsonElement record, string name) => record.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();

    [Fact]
    public void TinyStoriesMatchesHuggingFace()
    {
        var tokenizer = Get(TinyStories);
        foreach (var record in Records(SharedData.Path("golden", "tinystories656K-tokenizer-ids.jsonl")))
        {
            var text = record.GetProperty("text").GetString()!;
            Assert.True(Ids(record, "ids").SequenceEqual(tokenizer.Encode(text, addSpecialTokens: false)), $"ids of \"{text}\"");
        }
        // The post-processor (and add_bos_token) put <|start_story|> first; eos_token is <|end_story|>.
        Assert.Equal([1, 80, 147, 201, 282, 57], tokenizer.EncodePrompt("Once upon a time"));
        Assert.Equal([2], tokenizer.EosIds);
        Assert.Equal("Once upon a time", tokenizer.Decode(tokenizer.EncodePrompt("Once upon a time")));
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("dolma2")]
    [InlineData("gpt-neox")]
    public void ByteLevelMatchesHuggingFace(string name)
    {
        var tokenizer = Get(Path.Combine(Folder, $"{name}-tokenizer.json"));
        var count = 0;
        foreach (var record in Records(Path.Combine(Folder, $"{name}-golden.jsonl")))
        {
            var text = record.GetProperty("text").GetString()!;
            Assert.True(Ids(record, "ids").SequenceEqual(tokenizer.Encode(text, addSpecialTokens: false)),
                $"ids of \"{text}\": expected {string.Join(',', Ids(record, "ids"))}, got {string.Join(',', tokenizer.Encode(text, false))}");
            Assert.Equal(Ids(record, "ids_with_special"), tokenizer.Encode(text, addSpecialTokens: true));
            Assert.Equal(record.GetProperty("decoded").GetString(), tokenizer.Decode(Ids(record, "ids")));
            count++;
        }
        Assert.True(count >= 20);
    }

    /// <summary>Added tokens with lstrip, rstrip, single_word, matched in raw or in normalized text
    /// (TinyStories-656K's tokenizer.json with four tokens added). Ids only: Hugging Face's decode keeps
    /// special tokens that are also in the model's vocabulary, where we write none.</summary>
    [Fact]
    public void AddedTokensMatchHuggingFace()
    {
        var tokenizer = Get(Path.Combine(Folder, "added-tokens-tokenizer.json"));
        foreach (var record in Records(Path.Combine(Folder, "added-tokens-golden.jsonl")))
        {
            var text = record.GetProperty("text").GetString()!;
            Assert.True(Ids(record, "ids").SequenceEqual(tokenizer.Encode(text, addSpecialTokens: false)),
                $"ids of \"{text}\": expected {string.Join(',', Ids(record, "ids"))}, got {string.Join(',', tokenizer.Encode(text, false))}");
            Assert.Equal(Ids(record, "ids_with_special"), tokenizer.Encode(text, addSpecialTokens: true));
        }
    }

    /// <summary>Byte fallback as Llama 2's tokenizer.json does it: TinyStories-656K's file with the 256
    /// byte pieces &lt;0x00&gt;..&lt;0xFF&gt; added to its vocabulary (ids 2048..2303), so characters
    /// outside the vocabulary become their UTF-8 bytes instead of &lt;unk&gt;, and decode back.</summary>
    [Fact]
    public void ByteFallbackMatchesHuggingFace()
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(TinyStories))!.AsObject();
        var vocab = json["model"]!["vocab"]!.AsObject();
        for (var b = 0; b < 256; b++) vocab[$"<0x{b:X2}>"] = 2048 + b;
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("tokenizer.json"), json.ToJsonString());
        var tokenizer = HfTokenizer.Load(temp.File("tokenizer.json"));
        foreach (var record in Records(Path.Combine(Folder, "byte-fallback-golden.jsonl")))
        {
            var text = record.GetProperty("text").GetString()!;
            var ids = Ids(record, "ids");
            Assert.True(ids.SequenceEqual(tokenizer.Encode(text, addSpecialTokens: false)),
                $"ids of \"{text}\": expected {string.Join(',', ids)}, got {string.Join(',', tokenizer.Encode(text, false))}");
            Assert.Equal(Ids(record, "ids_with_special"), tokenizer.Encode(text, addSpecialTokens: true));
            if (!ids.Any(id => id is 0 or 1 or 2)) Assert.Equal(record.GetProperty("decoded").GetString(), tokenizer.Decode(ids));
        }
    }

    /// <summary>Pipelines of models whose files are too large to keep here, on vocabularies we have:
    /// Mistral v0.3's Metaspace pre-tokenizer and decoder (prepend_scheme first, no split) on
    /// TinyStories-656K's vocabulary, and SmolLM2's Digits + ByteLevel pre-tokenizer on GPT-2's. The
    /// goldens were made from the files these edits produce.</summary>
    [Theory]
    [InlineData("metaspace")]
    [InlineData("digits")]
    public void OtherPipelinesMatchHuggingFace(string name)
    {
        var (source, preTokenizer, decoder) = name == "metaspace"
            ? (TinyStories, "{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"prepend_scheme\":\"first\",\"split\":false}",
                "{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"prepend_scheme\":\"first\",\"split\":false}")
            : (Path.Combine(Folder, "gpt2-tokenizer.json"),
                "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]}",
                (string?)null);
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(source))!.AsObject();
        json["pre_tokenizer"] = System.Text.Json.Nodes.JsonNode.Parse(preTokenizer);
        if (decoder is not null)
        {
            json["normalizer"] = null;
            json["decoder"] = System.Text.Json.Nodes.JsonNode.Parse(decoder);
        }
        using var temp = new TempDirectory();
        File.WriteAllText(temp.File("tokenizer.json"), json.ToJsonString());
        var tokenizer = HfTokenizer.Load(temp.File("tokenizer.json"));
        foreach (var record in Records(Path.Combine(Folder, $"{name}-golden.jsonl")))
        {
            var text = record.GetProperty("text").GetString()!;
            var ids = Ids(record, "ids");
            Assert.True(ids.SequenceEqual(tokenizer.Encode(text, addSpecialTokens: false)),
                $"ids of \"{text}\": expected {string.Join(',', ids)}, got {string.Join(',', tokenizer.Encode(text, false))}");
            Assert.Equal(Ids(record, "ids_with_special"), tokenizer.Encode(text, addSpecialTokens: true));
            if (name == "digits" || !ids.Any(id => id is 0 or 1 or 2)) // HF's decode keeps TinyStories' specials (in its vocabulary)
                Assert.Equal(record.GetProperty("decoded").GetString(), tokenizer.Decode(ids));
        }
    }

    [Theory]
    [InlineData("gpt2")]
    [InlineData("dolma2")]
    public void StreamingNeverSplitsACharacter(string name)
    {
        var tokenizer = Get(Path.Combine(Folder, $"{name}-tokenizer.json"));
        const string text = "Emoji 😀🎉, 你好世界 and café";
        var stream = tokenizer.NewStream();
        var pieces = tokenizer.Encode(text, false).Select(stream.Append).ToList();
        Assert.Equal(text, string.Concat(pieces) + stream.Flush());
        Assert.All(pieces, piece => Assert.DoesNotContain('\uFFFD', piece));
        Assert.All(pieces, piece => Assert.False(piece.Length > 0 && char.IsHighSurrogate(piece[^1]), "a piece ends inside a surrogate pair"));
    }
}
