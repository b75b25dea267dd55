using Kangaroo.Native.Engine.Training;

namespace Kangaroo.Native.Tests.Training;

/// <summary>Reading training text: plain text documents, JSONL "text" and Spec-Bench "turns",
/// chunking to the sequence length, and clear errors for files that hold nothing usable.</summary>
public sealed class TrainingDataTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("kangaroo-data-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string content)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void PlainTextSplitsOnBlankLinesAndEndOfText()
    {
        var path = Write("a.txt", "Once upon a time\nthere was a cat.\n\n\nThe end.\n<|endoftext|>\nAnother story.\n");
        Assert.Equal(["Once upon a time\nthere was a cat.", "The end.", "Another story."], TrainingData.ReadTexts(path));
    }

    [Fact]
    public void JsonlReadsTextAndTurns()
    {
        var path = Write("a.jsonl", "{\"text\": \"Lily saw a dog.\"}\n\n{\"question_id\": 1, \"turns\": [\"Hi there.\", \"Bye.\"]}\n");
        Assert.Equal(["Lily saw a dog.", "Hi there.\nBye."], TrainingData.ReadTexts(path));
    }

    [Theory]
    [InlineData("empty.txt", "", "holds no text to train on")]
    [InlineData("blank.txt", "\n  \n\n", "holds no text to train on")]
    [InlineData("empty.jsonl", "\n", "holds no text to train on")]
    [InlineData("bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n", "bad.jsonl:2: expected an object with a string field \"text\"")]
    [InlineData("broken.jsonl", "{\"text\": \"ok\"\n", "broken.jsonl:1: not valid JSON")]
    public void UnusableFilesGiveClearErrors(string name, string content, string message)
    {
        var path = Write(name, content);
        Assert.Contains(message, Assert.Throws<ArgumentException>(() => TrainingData.ReadTexts(path)).Message);
    }

    [Fact]
    public void MissingFileIsNamed()
    {
        var path = Path.Combine(_dir, "nope.txt");
        Assert.Equal($"{path}: data file not found", Assert.Throws<ArgumentException>(() => TrainingData.ReadTexts(path)).Message);
    }

    [Fact]
    public void TextsAreChunkedWithBos()
    {
        var tokenizer = TextTokenizer.Load(Path.Combine(SharedData.RepositoryRoot, "models", "stories260K", "tok512.model"));
        const string story = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";
        var ids = tokenizer.Encode(story, addBos: false);
        var chunks = TrainingData.Tokenize([story, "Hi"], tokenizer, 8);
        Assert.All(chunks, c => Assert.Equal(tokenizer.BosId, c[0]));
        Assert.All(chunks, c => Assert.InRange(c.Length, 2, 8));
        Assert.Equal(ids, chunks.SkipLast(1).SelectMany(c => c.Skip(1)));
        Assert.Equal(tokenizer.Encode("Hi", addBos: true), chunks[^1]);
    }
}
