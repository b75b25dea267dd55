using System.Diagnostics;
using System.Globalization;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;
using Kangaroo.Native.Perf;

// kangaroo-perf: benchmarks and tools for measuring Kangaroo.Native (not part of the product CLI).
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var command = args.FirstOrDefault() ?? "help";
var options = Options.Parse(args.Skip(1).ToArray());
try
{
    switch (command)
    {
        case "membw":
            Console.WriteLine($"memory bandwidth, {Environment.ProcessorCount} cores, load {Measure.LoadAverage():F1}");
            foreach (var r in MemoryBandwidth.Run(options.Int("mb", 256))) Console.WriteLine($"| {r.What} | {r.Threads} thread(s) | {r.GBps:F1} GB/s |");
            return 0;
        case "kernels":
            var devices = options.Get("devices", "cpu,opencl,cuda").Split(',', StringSplitOptions.RemoveEmptyEntries);
            var filter = options.Get("filter", "");
            var cases = KernelBench.Cases(options.Flag("quick")).Where(c => $"{c.Op} {c.Shape} {c.Type} rows {c.Rows}".Contains(filter, StringComparison.OrdinalIgnoreCase));
            Console.WriteLine($"kernels on {string.Join(", ", devices)}; load {Measure.LoadAverage():F1}");
            Console.WriteLine(KernelBench.Header);
            var results = KernelBench.Run(devices, cases, Console.WriteLine);
            Console.WriteLine($"load after: {Measure.LoadAverage():F1}");
            var maxError = options.Float("max-error", float.PositiveInfinity);
            var failed = results.Where(r => !(r.MaxError <= maxError)).ToList();
            foreach (var r in failed) Console.WriteLine($"FAIL: {r.Case.Op} {r.Case.Shape} {r.Case.Type} rows {r.Case.Rows} on {r.Device}: max relative error {r.MaxError:E2} > {maxError:E0}");
            return failed.Count == 0 ? 0 : 1;
        case "make-model":
            var shape = options.Get("shape", "tinyllama");
            var config = ModelGenerator.Shapes.TryGetValue(shape, out var c) ? c : throw new ArgumentException($"unknown shape '{shape}' (known: {string.Join(", ", ModelGenerator.Shapes.Keys)})");
            var dtype = ElementTypes.Parse(options.Get("dtype", "f16"));
            var outDir = options.Required("out");
            var clock = Stopwatch.StartNew();
            var weights = ModelGenerator.Write(outDir, config, dtype, options.Get("tokenizer", Path.Combine(Options.RepositoryRoot(), "models", "stories260K", "tok512.model")),
                llama2c: options.Get("format", "hf") switch { "hf" => false, "llama2c" => true, var f => throw new ArgumentException($"unknown format '{f}' (hf or llama2c)") });
            Console.WriteLine($"wrote {weights} ({shape}, {dtype}, {new FileInfo(weights).Length / 1e9:F2} GB) in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        case "profile":
            DecodeProfile.Run(options.Get("model", Path.Combine(Options.RepositoryRoot(), "models", "stories260K", "stories260K.bin")), options.Get("device", "cpu"),
                options.Get("decoder", "autoregressive"), options.Flag("adapter") ? options.Required("adapter") : null, options.Int("tokens", 256),
                options.Flag("exit-layer") ? options.Int("exit-layer", 0) : null, options.Int("draft-steps", 3), options.Float("threshold", 0f), options.Int("prompts", 4));
            return 0;
        case "soak":
            Soak.Run(options.Get("model", Path.Combine(Options.RepositoryRoot(), "models", "stories260K", "stories260K.bin")), options.Get("device", "cpu"),
                options.Int("generations", 1000), options.Int("tokens", 64), options.Int("per-session", 10), Console.WriteLine);
            return 0;
        case "batch":
            BatchThroughput.Run(options.Required("model"), options.Get("device", "cpu"), options.Flag("weights") ? ElementTypes.Parse(options.Required("weights")) : null,
                options.Get("streams", "1,2,4,8").Split(',').Select(int.Parse).ToArray(), options.Int("tokens", 64), options.Int("rounds", 2), Console.WriteLine);
            return 0;
        case "serve-soak":
            var serveArguments = new List<string> { "--device", options.Get("device", "cpu"), "--decoder", options.Get("decoder", "auto"), "--parallel", options.Get("parallel", "8") };
            if (options.Flag("model")) serveArguments.AddRange(["--model", options.Required("model")]);
            return ServeSoak.Run(options.Get("kangaroo", Path.Combine(Options.RepositoryRoot(), "src", "Cli", "bin", "Release", "net10.0", "kangaroo.dll")), serveArguments,
                options.Int("requests", 1000), options.Int("clients", 8), options.Int("tokens", 48), Console.WriteLine) ? 0 : 1;
        case "vs-llamacpp":
            return KangarooSideBySide.Run(args[1..]);
        case "golden":
            var log = new List<string>();
            var ok = GoldenCheck.Run(options.Get("model", Path.Combine(Options.RepositoryRoot(), "models", "stories260K", "stories260K.bin")), options.Required("golden"),
                options.Get("device", "cpu"), options.Int("tokens", 1000), l => { Console.WriteLine(l); log.Add(l); });
            Console.WriteLine(ok ? "golden: all identical" : "golden: MISMATCH");
            return ok ? 0 : 1;
        default:
            Console.WriteLine($"""
                kangaroo-perf membw [--mb 256]
                kangaroo-perf kernels [--devices cpu,opencl,cuda] [--quick] [--filter TEXT] [--max-error 1e-3 (fail above)]
                kangaroo-perf make-model --out DIR [--shape tinyllama|stories110m|tiny-gqa] [--dtype f16|bf16|f32] [--format hf|llama2c (f32 only)]
                kangaroo-perf profile [--model PATH] [--device cpu] [--decoder autoregressive|early-exit|kangaroo|auto] [--adapter PATH (default: beside the model)] [--tokens 256] [--prompts 4] [--exit-layer L --draft-steps 3 --threshold 0]
                kangaroo-perf soak [--model PATH] [--device cpu] [--generations 1000] [--tokens 64] [--per-session 10]
                kangaroo-perf batch --model PATH [--weights q8_0] [--device cpu] [--streams 1,2,4,8] [--tokens 64] [--rounds 2]
                kangaroo-perf serve-soak [--kangaroo src/Cli/bin/Release/net10.0/kangaroo.dll] [--requests 1000] [--clients 8] [--tokens 48] [--model PATH] [--device cpu] [--decoder auto] [--parallel 8]
                kangaroo-perf vs-llamacpp {SideBySideArguments.Usage}   # our half of perf/vs-llamacpp.sh (one JSON line)
                kangaroo-perf golden --golden stories260K-greedy.jsonl [--model PATH] [--device cuda] [--tokens N]
                """);
            return command == "help" ? 0 : 2;
    }
}
catch (Exception e) when (e is ArgumentException or IOException or ModelFormatException or InvalidOperationException)
{
    Console.Error.WriteLine($"kangaroo-perf {command}: {e.Message}");
    return 1;
}

/// <summary>--name value pairs and --flag switches.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values = [];

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal)) throw new ArgumentException($"unexpected argument '{args[i]}'");
            var name = args[i][2..];
            o._values[name] = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal) ? args[++i] : "true";
        }
        return o;
    }

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name, fallback);
    public string Required(string name) => _values.TryGetValue(name, out var v) ? v : throw new ArgumentException($"--{name} is required");
    public bool Flag(string name) => _values.ContainsKey(name);
    public int Int(string name, int fallback) => _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
    public float Float(string name, float fallback) => _values.TryGetValue(name, out var v) ? float.Parse(v, CultureInfo.InvariantCulture) : fallback;

    /// <summary>The repository (or published bundle) root: the first folder above the executable holding models/stories260K.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (Directory.Exists(Path.Combine(dir.FullName, "models", "stories260K"))) return dir.FullName;
        throw new DirectoryNotFoundException($"no models/stories260K above {AppContext.BaseDirectory}");
    }
}
