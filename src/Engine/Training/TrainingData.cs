using System.Text.Json;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Engine.Training;

/// <summary>
/// Training sequences for an adapter: token arrays that start with BOS and are at most the sequence
/// length long. They come from text (a plain text file or JSONL), or from the target model itself.
/// </summary>
public static class TrainingData
{
    /// <summary>
    /// The texts of a data file. <c>.jsonl</c>: one JSON object per line with a string field
    /// <c>text</c>, or a <c>turns</c> array of strings (Spec-Bench style, joined with newlines).
    /// Any other file is plain text whose documents are separated by blank lines or by lines that
    /// read <c>&lt;|endoftext|&gt;</c>.
    /// </summary>
    public static List<string> ReadTexts(string path)
    {
        if (!File.Exists(path)) throw new ArgumentException($"{path}: data file not found");
        InputFile.Require(path, "data file");
        var texts = new List<string>();
        if (path.EndsWith(".jsonl", StringComparison.OrdinalIgnoreCase))
        {
            var number = 0;
            foreach (var line in File.ReadLines(path))
            {
                number++;
                if (line.Trim().Length == 0) continue;
                texts.Add(ParseJsonLine(path, number, line));
            }
        }
        else
        {
            var document = new List<string>();
            void Flush()
            {
                if (document.Count > 0) texts.Add(string.Join('\n', document));
                document.Clear();
            }
            foreach (var line in File.ReadLines(path))
            {
                if (line.Trim().Length == 0 || line.Trim() == "<|endoftext|>") Flush();
                else document.Add(line);
            }
            Flush();
        }
        texts.RemoveAll(t => t.Trim().Length == 0);
        if (texts.Count == 0) throw new ArgumentException($"{path}: the data file holds no text to train on");
        return texts;
    }

    private static string ParseJsonLine(string path, int number, string line)
    {
        try
        {
            using var json = JsonText.Parse(line);
            var root = json.RootElement;
            if (root.ValueKind == JsonValueKind.Object)
            {
                if (root.TryGetProperty("text", out var text) && text.ValueKind == JsonValueKind.String) return text.GetString()!;
                if (root.TryGetProperty("turns", out var turns) && turns.ValueKind == JsonValueKind.Array
                    && turns.EnumerateArray().All(t => t.ValueKind == JsonValueKind.String))
                    return string.Join('\n', turns.EnumerateArray().Select(t => t.GetString()));
            }
        }
        catch (JsonException e)
        {
            throw new ArgumentException($"{path}:{number}: not valid JSON ({ErrorText.Json(e)})");
        }
        throw new ArgumentException($"{path}:{number}: expected an object with a string field \"text\" or a \"turns\" array of strings");
    }

    /// <summary>Encodes each text and cuts it into sequences of at most <paramref name="seqLen"/> tokens,
    /// each starting with what a prompt starts with (BOS): continuation chunks too, so positions always
    /// begin at a BOS as they do when decoding. Chunks shorter than two tokens carry no training signal and are dropped.</summary>
    public static List<int[]> Tokenize(IEnumerable<string> texts, ModelTokenizer tokenizer, int seqLen)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 2);
        var sequences = new List<int[]>();
        var start = tokenizer.EncodePrompt("");
        foreach (var text in texts)
        {
            var ids = tokenizer.Encode(text, addSpecialTokens: false);
            for (var at = 0; at < ids.Length; at += seqLen - start.Length)
            {
                var take = Math.Min(seqLen - start.Length, ids.Length - at);
                if (take < 1) break;
                sequences.Add([.. start, .. ids.AsSpan(at, take)]);
            }
        }
        return sequences;
    }

    /// <summary>The most sequences <see cref="SelfGenerate"/> samples in one call.</summary>
    public const int MaxSelfGenerated = 1_000_000;

    /// <summary>
    /// Samples <paramref name="count"/> sequences from the target at <paramref name="temperature"/>:
    /// sequence i starts from BOS alone or, in turn, from one of <paramref name="prompts"/> (token ids
    /// with BOS), and is sampled until a stop token (not kept) or <paramref name="seqLen"/> tokens.
    /// Sequence i uses sampling seed f(seed, i), so the result depends only on the arguments. A
    /// temperature below 1 gives text closer to what greedy decoding produces.
    /// </summary>
    public static List<int[]> SelfGenerate(LlamaModel model, int count, int seqLen, IReadOnlyList<int[]> prompts, int seed,
        float temperature = 1f, Action<int, long>? progress = null, CancellationToken cancel = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(seqLen, 2);
        if (!(temperature > 0) || !float.IsFinite(temperature))
            throw new ArgumentException($"--self-generate-temperature {temperature} must be positive (at 0 every sequence from one prompt would be the same)");
        foreach (var prompt in prompts)
            if (prompt.Length >= seqLen) throw new ArgumentException($"a prompt of {prompt.Length} tokens leaves no room in --seq-len {seqLen}");
        var decoder = new AutoregressiveDecoder(model);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, MaxSelfGenerated);
        var sequences = new List<int[]>();
        long tokens = 0;
        for (var i = 0; i < count; i++)
        {
            cancel.ThrowIfCancellationRequested();
            var turn = i % (prompts.Count + 1);
            int[] prompt = turn == 0 ? [model.Config.BosId] : prompts[turn - 1];
            var sampling = new SamplingOptions(Temperature: temperature, Seed: (ulong)(uint)seed * 1_000_003UL + (ulong)i + 1);
            var generated = decoder.Generate(prompt, seqLen - prompt.Length, sampling).ToList();
            if (decoder.Stop == StopReason.StopToken) generated.RemoveAt(generated.Count - 1);
            int[] sequence = [.. prompt, .. generated];
            if (sequence.Length >= 2) sequences.Add(sequence);
            tokens += sequence.Length;
            progress?.Invoke(i + 1, tokens);
        }
        return sequences;
    }
}
