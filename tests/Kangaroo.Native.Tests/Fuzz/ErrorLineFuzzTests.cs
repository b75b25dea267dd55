using System.CommandLine;
using System.Globalization;
using System.Text;
using Kangaroo.Native.Cli;
using Kangaroo.Native.Tests.Training;
using Xunit.Sdk;

namespace Kangaroo.Native.Tests.Fuzz;

/// <summary>
/// Every refusal of a command is one line, whatever bytes its input files hold: each input file of
/// <c>kangaroo generate</c> and <c>kangaroo template</c> is mutated with newlines, control characters,
/// invalid UTF-8, Unicode separators, JSON escapes of them and long runs of text
/// (<see cref="Mutator.MutateHostile"/>), the command runs in-process, and it must end with exit code
/// 0 or 1 (no other exception) and a stderr whose every line is a <c>kangaroo:</c> or <c>note:</c>
/// line, free of control, format and separator characters, lone surrogates and U+FFFD, and at most
/// <see cref="MaxLine"/> characters long. KANGAROO_FUZZ_SCALE=N runs N times the cases.
/// </summary>
[Collection(ConsoleCollection.Name)]
public sealed class ErrorLineFuzzTests(ConvertedModel converted, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<ConvertedModel>, IDisposable
{
    private const int CasesPerFile = 60;

    /// <summary>The longest stderr line allowed: the message (at most 600 characters) and "kangaroo: ",
    /// with room for the temporary paths the tests use.</summary>
    private const int MaxLine = 700;

    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private static readonly string[] Generate = ["generate", "--device", "cpu", "--decoder", "autoregressive", "--max-new-tokens", "2"];

    /// <summary>Runs <paramref name="args"/> as <c>kangaroo</c> does, with stdout and stderr captured.</summary>
    private static (int Code, string Stderr) Run(string[] args)
    {
        var (code, _, error) = InProcessCli.Run([GenerateCommand.Create(), TemplateCommand.Create()], args);
        return (code, error);
    }

    /// <summary>Why <paramref name="line"/> is not one clean line of at most <see cref="MaxLine"/> characters; null when it is.</summary>
    private static string? Unclean(string line)
    {
        if (line.Length > MaxLine) return $"{line.Length} characters";
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (char.IsSurrogatePair(line, i))
            {
                if (CharUnicodeInfo.GetUnicodeCategory(line, i) == UnicodeCategory.Format) return $"format character U+{char.ConvertToUtf32(line, i):X}";
                i++;
                continue;
            }
            var category = CharUnicodeInfo.GetUnicodeCategory(c);
            if (c == '\uFFFD' || category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
                    or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate)
                return $"character U+{(int)c:X4} at {i}";
        }
        return null;
    }

    /// <summary>Mutates <paramref name="original"/> into <paramref name="target"/> for each case and runs
    /// <paramref name="commands"/> on it, checking the exit code and every stderr line. The first command
    /// must succeed on the unmutated file.</summary>
    private void Fuzz(int format, string original, string target, Mutator.Layout layout, int hotBytes, params string[][] commands)
    {
        var bytes = File.ReadAllBytes(original);
        File.WriteAllBytes(target, bytes);
        var (firstCode, firstStderr) = Run(commands[0]);
        Assert.True(firstCode == 0, $"kangaroo {commands[0][0]} on the unmutated {Path.GetFileName(original)}: {firstStderr}");
        var (succeeded, refused) = (0, 0);
        var samples = new SortedSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < CasesPerFile * FormatFuzzTests.Scale; i++)
        {
            var seed = 7_000_000 + format * 1_000_003 + i;
            var (mutated, what) = new Mutator(seed).MutateHostile(bytes, layout, hotBytes);
            File.WriteAllBytes(target, mutated);
            foreach (var args in commands)
            {
                var where = $"case {i} (seed {seed}: {what}) of {Path.GetFileName(original)}, kangaroo {args[0]}";
                int code;
                string stderr;
                try
                {
                    (code, stderr) = Run(args);
                }
                catch (Exception e)
                {
                    throw new XunitException($"{where}: {e.GetType().Name} escaped: {e.Message}\n{e.StackTrace}");
                }
                if (code is not (0 or CliRunner.ErrorExitCode)) throw new XunitException($"{where}: exit code {code}");
                var lines = stderr.Split('\n');
                if (lines[^1].Length != 0) throw new XunitException($"{where}: stderr does not end with a newline: {JsonSerializer.Serialize(stderr)}");
                foreach (var line in lines[..^1])
                {
                    if (!line.StartsWith("kangaroo: ", StringComparison.Ordinal) && !line.StartsWith("note: ", StringComparison.Ordinal))
                        throw new XunitException($"{where}: stderr line is not a kangaroo: or note: line (a message broken over lines?): {JsonSerializer.Serialize(stderr)}");
                    if (Unclean(line) is { } why) throw new XunitException($"{where}: stderr line has {why}: {JsonSerializer.Serialize(line)}");
                }
                if (code == 0)
                {
                    succeeded++;
                }
                else
                {
                    refused++;
                    if (samples.Count < 8) samples.Add(lines[^2].Replace(_temp.Path, "TMP"));
                    if (lines.Length < 2 || !lines[^2].StartsWith("kangaroo: ", StringComparison.Ordinal))
                        throw new XunitException($"{where}: exit code 1 without a kangaroo: line last: {JsonSerializer.Serialize(stderr)}");
                    // A refusal names the file, or (a template's error) the template's line, or (a template
                    // that renders a long text) the prompt's length.
                    if (!lines[^2].Contains(Path.GetFileName(target), StringComparison.Ordinal)
                        && !new[] { "kangaroo: chat template", "kangaroo: the chat template", "kangaroo: the prompt is" }.Any(p => lines[^2].StartsWith(p, StringComparison.Ordinal)))
                        throw new XunitException($"{where}: the refusal does not name {Path.GetFileName(target)}: {lines[^2]}");
                }
            }
        }
        Assert.True(refused > 0, "no case was refused");
        output.WriteLine($"{Path.GetFileName(original)}: {CasesPerFile * FormatFuzzTests.Scale} cases x {commands.Length} commands, {succeeded} ran, {refused} refused, such as:");
        foreach (var sample in samples) output.WriteLine("  " + sample);
    }

    /// <summary>A copy of the converted stories260K directory (config.json, model.safetensors, tokenizer.model).</summary>
    private string CopyOfConverted(string name)
    {
        var directory = _temp.File(name);
        Directory.CreateDirectory(directory);
        foreach (var file in Directory.GetFiles(converted.Directory)) File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        return directory;
    }

    /// <summary>A copy of TinyStories-656K as published (tokenizer.json, tokenizer_config.json), with a
    /// ChatML chat_template added to tokenizer_config.json, so that <c>--chat</c> reads it.</summary>
    private string CopyOfTinyStories()
    {
        var directory = _temp.File("656K");
        Directory.CreateDirectory(directory);
        foreach (var file in Directory.GetFiles(SharedData.Path("models", "TinyStories-656K")))
            if (Path.GetExtension(file) == ".json" || file.EndsWith(".safetensors", StringComparison.Ordinal))
                File.Copy(file, Path.Combine(directory, Path.GetFileName(file)));
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(directory, "tokenizer_config.json")))!;
        config["chat_template"] = File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja"));
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return directory;
    }

    /// <summary>A generate run of <paramref name="model"/>, the first command of the model files' cases.</summary>
    private static string[] Generating(string model) => [.. Generate, "--model", model, "--prompt", "Once upon"];

    /// <summary><paramref name="file"/> of <paramref name="directory"/> copied aside as the original the cases
    /// mutate back into place (<c>Path</c>).</summary>
    private (string Original, string Path) SetAside(string directory, string file)
    {
        var (original, path) = (_temp.File(file), Path.Combine(directory, file));
        File.Copy(path, original);
        return (original, path);
    }

    /// <summary>Every byte of the file is worth mutating.</summary>
    private static int WholeFile(string path) => (int)new FileInfo(path).Length;

    /// <summary>The 8-byte length and the JSON header of a safetensors file: the bytes worth mutating.</summary>
    private static int HeaderBytes(string path) => 8 + (int)BitConverter.ToInt64(File.ReadAllBytes(path).AsSpan(0, 8));

    /// <summary>Llama 3.2's chat template (the first of Templates/real-templates.jsonl) as a file.</summary>
    private string Llama32Template()
    {
        var record = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Templates", "real-templates.jsonl")).First();
        var path = _temp.File("llama-3.2.jinja");
        File.WriteAllText(path, JsonDocument.Parse(record).RootElement.GetProperty("template").GetString());
        return path;
    }

    /// <summary>A model directory's own files, each fuzzed where its format keeps what matters (a safetensors
    /// file's header, any byte of the others): the converted tiny model's config, weights and SentencePiece
    /// tokenizer, and TinyStories-656K's tokenizer.json.</summary>
    [Theory]
    [InlineData(1, "config", "config.json", Mutator.Layout.Json)]
    [InlineData(2, "safetensors", "model.safetensors", Mutator.Layout.SafeTensors)]
    [InlineData(3, "sentencepiece", "tokenizer.model", Mutator.Layout.Binary)]
    [InlineData(4, null, "tokenizer.json", Mutator.Layout.Json)]
    public void ModelFile(int format, string? converted, string file, Mutator.Layout layout)
    {
        var directory = converted is null ? CopyOfTinyStories() : CopyOfConverted(converted);
        var (original, path) = SetAside(directory, file);
        Fuzz(format, original, path, layout, layout == Mutator.Layout.SafeTensors ? HeaderBytes(original) : WholeFile(original), Generating(directory));
    }

    [Fact]
    public void TokenizerConfigJson()
    {
        var directory = CopyOfTinyStories();
        var (original, path) = SetAside(directory, "tokenizer_config.json");
        var messages = _temp.File("messages.json");
        File.WriteAllText(messages, """[{"role": "user", "content": "Tell me a story."}]""");
        Fuzz(5, original, path, Mutator.Layout.Json, WholeFile(original),
            [.. Generate, "--model", directory, "--chat", "--prompt", "Tell me a story."],
            ["template", "--template", path, "--messages", messages, "--add-generation-prompt"]);
    }

    /// <summary>llama.cpp's Q8_0 stories260K (GGUF v2): its metadata keys and strings, tensor names and
    /// tokens; loaded as a model and read for a chat template.</summary>
    [Fact]
    public void Gguf()
    {
        var original = SharedData.Path("models", "gguf", "stories260K-q8_0-v2.gguf");
        using var file = Kangaroo.Native.Loader.GgufFile.Open(original);
        var path = _temp.File("model.gguf");
        var messages = _temp.File("messages.json");
        File.WriteAllText(messages, """[{"role": "user", "content": "Hi"}]""");
        Fuzz(6, original, path, Mutator.Layout.Binary, (int)file.DataOffset,
            Generating(path),
            ["template", "--template", path, "--messages", messages]);
    }

    /// <summary>Llama 3.2's chat template (tools, tool calls, macros of its own kind), as a template file.</summary>
    [Fact]
    public void ChatTemplateFile()
    {
        var original = Llama32Template();
        var messages = _temp.File("messages.json");
        File.WriteAllText(messages, """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Why?"}]""");
        var path = _temp.File("template.jinja");
        Fuzz(7, original, path, Mutator.Layout.Json, WholeFile(original),
            ["template", "--template", path, "--messages", messages, "--add-generation-prompt"]);
    }

    [Fact]
    public void MessagesJson()
    {
        var original = _temp.File("messages-original.json");
        File.WriteAllText(original, """[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story about a \"dog\"."}, {"role": "assistant", "content": "Once upon a time..."}]""");
        // The same list is the tools of the second command: its items are mappings, as tools are.
        var path = _temp.File("messages.json");
        var fixedMessages = _temp.File("fixed-messages.json");
        File.Copy(original, fixedMessages);
        var template = Llama32Template();
        Fuzz(8, original, path, Mutator.Layout.Json, WholeFile(original),
            ["template", "--template", Path.Combine(AppContext.BaseDirectory, "Chat", "chatml.jinja"), "--messages", path],
            ["template", "--template", template, "--messages", fixedMessages, "--tools", path]);
    }

    /// <summary>The embedded model's Kangaroo adapter: its safetensors header and the acceptance
    /// statistics in its metadata.</summary>
    [Fact]
    public void KangarooAdapter()
    {
        var original = Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, "kangaroo-adapter.safetensors");
        var path = _temp.File("adapter.safetensors");
        Fuzz(9, original, path, Mutator.Layout.SafeTensors, HeaderBytes(original),
            ["generate", "--device", "cpu", "--decoder", "kangaroo", "--max-new-tokens", "4", "--model", SharedData.EmbeddedModel, "--adapter", path, "--prompt", "Once upon"]);
    }

    /// <summary>The helper the loaders use: control characters, separators, bidi overrides, lone
    /// surrogates and U+FFFD are escaped; quoted text and long messages are cut short.</summary>
    [Fact]
    public void ErrorTextEscapesAndCuts()
    {
        Assert.Equal(@"a\nb\r\t\x00\x1B[2J\x85\u2028\u202E\uFFFD\uD800 é ▁ 😀", Kangaroo.Native.Loader.ErrorText.Escape("a\nb\r\t\0\u001b[2J\u0085\u2028\u202e\ufffd\ud800 é ▁ 😀"));
        Assert.Equal(new string('x', 64) + "...", Kangaroo.Native.Loader.ErrorText.Quote(new string('x', 1000)));
        var message = "file.json: " + new string('y', 5000) + " is wrong";
        var line = Kangaroo.Native.Loader.ErrorText.OneLine(message);
        Assert.True(line.Length <= Kangaroo.Native.Loader.ErrorText.MessageLength, $"{line.Length}");
        Assert.StartsWith("file.json: yyy", line);
        Assert.EndsWith("yyy is wrong", line);
        Assert.Contains("...", line);
        var json = Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(Encoding.UTF8.GetBytes("{\"a\": fals\u0001\n\n" + new string('z', 3000) + "}")));
        Assert.StartsWith(@"'fals\x01\n\n" + new string('z', 17) + "...' is an invalid JSON literal. Expected the literal 'false'.", Kangaroo.Native.Loader.ErrorText.Json(json));
    }
}
