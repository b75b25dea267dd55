using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Engine.Training;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo train-adapter</c>: trains a Kangaroo adapter for a model by self-distillation
/// and writes it as safetensors, with a checkpoint at the end of every epoch.</summary>
internal static class TrainAdapterCommand
{
    public static Command Create()
    {
        var modelArguments = new ModelArguments(withTokenizer: true);
        var exitLayer = new Option<int>("--exit-layer") { Description = "exit layer l: the adapter reads the residual stream after block l (1..layers-1)", Required = true };
        var data = new Option<string>("--data") { Description = "training text: a .txt file (documents separated by blank lines) or .jsonl with \"text\" or \"turns\"" };
        var selfGenerate = new Option<int>("--self-generate") { Description = "also sample N sequences from the model itself (from BOS and from each prompt in turn)" };
        var temperature = new Option<float>("--self-generate-temperature") { Description = "sampling temperature of --self-generate (> 0; below 1 is closer to greedy text)", DefaultValueFactory = _ => 1f };
        var prompts = new Option<string[]>("--prompt") { Description = "a prompt to start self-generated sequences from (repeatable)" };
        var promptFile = new Option<string>("--prompt-file") { Description = "a text file of prompts for --self-generate, one per line (added to --prompt)" };
        var seqLen = new Option<int>("--seq-len") { Description = "tokens per training sequence (at most the model's context)", DefaultValueFactory = _ => 256 };
        var epochs = new Option<int>("--epochs") { Description = "passes over the training sequences", DefaultValueFactory = _ => 10 };
        var lr = new Option<float>("--lr") { Description = "peak learning rate (AdamW, betas 0.9/0.95)", DefaultValueFactory = _ => 3e-3f };
        var batch = new Option<int>("--batch") { Description = "sequences per optimiser step", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "seed of initialisation, split, order and self-generation", DefaultValueFactory = _ => 1 };
        var weightDecay = new Option<float>("--weight-decay") { Description = "AdamW weight decay of the projections", DefaultValueFactory = _ => 0.01f };
        var clip = new Option<float>("--clip") { Description = "gradient value clipping (0 = none)", DefaultValueFactory = _ => 0.5f };
        var warmup = new Option<float>("--warmup") { Description = "fraction of steps of linear warm-up before linear decay", DefaultValueFactory = _ => 0.05f };
        var output = new Option<string>("--out") { Description = "adapter file to write (safetensors)", Required = true };
        var draftVocab = new Option<int?>("--draft-vocab") { Description = "draft over the K most frequent tokens of the training data only (stored in the adapter; verification keeps the full vocabulary)" };

        var command = new Command("train-adapter", "Train a Kangaroo adapter for a model (self-distillation from the frozen model)")
        {
            exitLayer, data, selfGenerate, temperature, prompts, promptFile, seqLen, epochs, lr, batch, seed, weightDecay, clip, warmup, output, draftVocab,
        };
        modelArguments.AddTo(command);
        command.SetAction(result => CliRunner.Guard(() =>
        {
            var dataPath = result.GetValue(data);
            var generateCount = result.GetValue(selfGenerate);
            var promptPath = result.GetValue(promptFile);
            var promptTexts = (result.GetValue(prompts) ?? []).Concat(promptPath is null ? [] : PromptFile.ReadTexts(promptPath)).ToList();
            if (dataPath is null && generateCount == 0) throw new ArgumentException("give --data FILE, --self-generate N, or both");
            if (generateCount is < 0 or > TrainingData.MaxSelfGenerated)
                throw new ArgumentException($"--self-generate {generateCount} must be in 0..{TrainingData.MaxSelfGenerated}");
            if (promptTexts.Count > 0 && generateCount == 0) throw new ArgumentException("--prompt and --prompt-file only apply to --self-generate");
            var generateTemperature = result.GetValue(temperature);
            var outPath = OutputPath(result.GetValue(output)!);

            using var session = modelArguments.Open(result);
            foreach (var input in session.Files.Append(dataPath).OfType<string>())
                if (SameFile(input, outPath))
                    throw new ArgumentException($"--out {result.GetValue(output)}: is the input {input}; write the adapter to a new file");
            var config = session.Model.Config;
            if (result.GetValue(draftVocab) is { } k && (k < 1 || k > config.VocabSize))
                throw new ArgumentException($"--draft-vocab {k} must be in 1..{config.VocabSize}");
            var options = new TrainingOptions(result.GetValue(exitLayer), result.GetValue(seqLen), result.GetValue(epochs), result.GetValue(lr),
                result.GetValue(batch), result.GetValue(seed), result.GetValue(weightDecay), result.GetValue(clip), result.GetValue(warmup))
                .Validate(config.Layers, session.Model.Context);

            using var cancel = new CancellationTokenSource();
            ConsoleCancelEventHandler onCancel = (_, e) =>
            {
                e.Cancel = true; // finish the current step; the last checkpoint stays whole
                cancel.Cancel();
            };
            Console.CancelKeyPress += onCancel;
            try
            {
                var sequences = new List<int[]>();
                var sources = new List<string>();
                if (dataPath is not null)
                {
                    var texts = TrainingData.ReadTexts(dataPath);
                    var tokenized = TrainingData.Tokenize(texts, session.Tokenizer ?? throw new ArgumentException($"{session.ModelPath}: no tokenizer found beside the model; pass --tokenizer"), options.SeqLen);
                    if (tokenized.Count == 0) throw new ArgumentException($"{dataPath}: the texts encode to no sequence of at least 2 tokens");
                    sequences.AddRange(tokenized);
                    sources.Add($"{Path.GetFileName(dataPath)} ({texts.Count} texts, {tokenized.Count} sequences)");
                }
                if (generateCount > 0)
                {
                    var promptIds = promptTexts.Select(session.EncodePrompt).ToList();
                    var bar = new ProgressLine();
                    var clock = Stopwatch.StartNew();
                    var generated = TrainingData.SelfGenerate(session.Model, generateCount, options.SeqLen, promptIds, options.Seed, generateTemperature,
                        (done, tokens) => bar.Show(done, generateCount, $"sampling {done}/{generateCount} sequences, {tokens / clock.Elapsed.TotalSeconds:F0} tok/s", done == generateCount),
                        cancel.Token);
                    sequences.AddRange(generated);
                    bar.Finish(string.Create(CultureInfo.InvariantCulture,
                        $"sampled {generated.Count} sequences ({generated.Sum(g => g.Length)} tokens) from the model in {clock.Elapsed.TotalSeconds:F1} s"));
                    sources.Add(string.Create(CultureInfo.InvariantCulture,
                        $"self-generated {generated.Count} sequences (temperature {generateTemperature}, seed {options.Seed}, from BOS{(promptTexts.Count > 0 ? $" and {promptTexts.Count} prompts" : "")})"));
                }

                using var trainer = new AdapterTrainer(session.Model, options);
                var (train, held) = trainer.Split(sequences);
                var vocabulary = result.GetValue(draftVocab) is { } size ? AdapterWeights.MostFrequentTokens(train, config.VocabSize, size) : null;
                Console.Error.WriteLine($"kangaroo: training an exit-layer-{options.ExitLayer} adapter on {session.Device.Kind}: {train.Count} sequences ({train.Sum(s => s.Length)} tokens), {held.Count} held out");
                var progressBar = new ProgressLine();
                var saved = 0;
                var commandLine = "kangaroo " + string.Join(' ', result.Tokens.Select(t => t.Value.Contains(' ') ? $"\"{t.Value}\"" : t.Value));
                var outcome = trainer.Train(sequences,
                    p => progressBar.Show(p.Step, p.TotalSteps,
                        $"step {p.Step}/{p.TotalSteps}, epoch {p.Epoch}/{p.Epochs}: loss {p.Recent.MeanLoss:F4} agree {p.Recent.MeanAgreement:P1} overlap {p.Recent.MeanOverlap:F3} {p.TokensPerSecond:F0} tok/s"),
                    (report, weights) =>
                    {
                        weights.Metadata["kangaroo.train.data"] = string.Join("; ", sources);
                        weights.Metadata["kangaroo.train.command"] = commandLine;
                        weights.Metadata["kangaroo.train.device"] = session.Device.Kind;
                        weights.DraftVocabulary = vocabulary;
                        weights.Save(outPath, session.Model.Fingerprint);
                        saved = report.Epoch;
                        progressBar.Finish($"epoch {report.Epoch}/{options.Epochs}: train loss {report.Train.MeanLoss:F4}, held-out loss {report.HeldOut.MeanLoss:F4}, " +
                                           $"agreement {report.HeldOut.MeanAgreement:P1}, overlap {report.HeldOut.MeanOverlap:F3}; saved {outPath}");
                    },
                    cancel.Token);

                var first = outcome.Epochs[0].HeldOut;
                var last = outcome.Epochs[^1];
                if (outcome.Cancelled)
                {
                    progressBar.Finish("");
                    Console.Error.WriteLine(saved > 0
                        ? $"kangaroo: interrupted; {outPath} holds the checkpoint of epoch {saved}"
                        : "kangaroo: interrupted before the first epoch ended; nothing written");
                    return 130;
                }
                var adapter = outcome.Weights;
                adapter.DraftVocabulary = vocabulary;
                using (var head = new AdapterHead(session.Model, adapter))
                    adapter.Acceptance = AcceptanceStatistics.Measure(session.Model, head, options.ExitLayer, held);
                adapter.Save(outPath, session.Model.Fingerprint);
                var forecast = adapter.Acceptance.Forecast(6, 0.6f);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{outPath}: exit layer {options.ExitLayer}, held-out loss {first.MeanLoss:F4} -> {last.HeldOut.MeanLoss:F4}, top-1 agreement {last.HeldOut.MeanAgreement:P1}, " +
                    $"overlap {last.HeldOut.MeanOverlap:F3}; held-out greedy decoding: {forecast.TokensPerRound:F2} tokens per round expected at gamma 6, eta 0.6; " +
                    $"{last.Elapsed.TotalSeconds:F1} s, {last.TokensPerSecond:F0} tokens/s"));
                return 0;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("kangaroo: interrupted while sampling training data; nothing written");
                return 130;
            }
            finally
            {
                Console.CancelKeyPress -= onCancel;
            }
        }));
        return command;
    }

    /// <summary>The file the adapter is written to: <paramref name="path"/>, or the file a symbolic link
    /// there finally points to (the link stays a link). Fails early, before any training, when the
    /// adapter cannot be written there, or when the path exists and is not a regular file: a FIFO or a
    /// device node must not be replaced by a regular file.</summary>
    private static string OutputPath(string path)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException($"--out '{path}' is not a file name");
        var full = Path.GetFullPath(path);
        var info = new FileInfo(full);
        var target = info.LinkTarget is null ? full : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full;
        switch (InputFile.KindOf(target))
        {
            case FileKind.Directory:
                throw new IOException($"--out {path}: is a directory; give a file name such as {Path.Combine(path, InferenceSession.AdapterFileName)}");
            case FileKind.Other:
                throw new IOException($"--out {path}: exists and is not a regular file (a FIFO, socket or device); it will not be replaced");
        }
        var directory = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(directory)) throw new IOException($"--out {path}: directory {directory} does not exist");
        try
        {
            using (new FileStream(AtomicFile.TemporaryBeside(target), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose))
            {
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"--out {path}: not writable ({e.Message})");
        }
        return target;
    }

    /// <summary>True when two paths name the same file, symbolic links followed.</summary>
    private static bool SameFile(string a, string b)
    {
        static string Resolve(string path)
        {
            var info = new FileInfo(Path.GetFullPath(path));
            return info.LinkTarget is null ? info.FullName : info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? info.FullName;
        }
        return string.Equals(Resolve(a), Resolve(b), OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
    }
}
