using System.Globalization;
using System.Runtime.InteropServices;
using LLama;
using LLama.Common;
using LLama.Native;
using Kangaroo.Native.Perf;

// llamacpp-peer: llama.cpp (LLamaSharp's CPU build) measured as kangaroo-perf vs-llamacpp measures our
// engine, for perf/vs-llamacpp.sh. Not part of the product; the engine never references LLamaSharp.
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
var verbose = Environment.GetEnvironmentVariable("LLAMACPP_PEER_VERBOSE") == "1";
// llama.cpp's log (and LLamaSharp's choice of native library) on stderr: errors, or everything when verbose.
NativeLibraryConfig.All.WithLogCallback((level, message) =>
{
    if (verbose || level == LLamaLogLevel.Error) Console.Error.Write(message);
});
try
{
    switch (args.FirstOrDefault())
    {
        case "run":
            var a = SideBySideArguments.Parse(args[1..]);
            return SideBySide.Run("llama.cpp", a, () => new LlamaCppEngine(a), _ => Describe());
        case "quantize" when args.Length == 4:
            // The quantizer of llama.cpp itself (llama_model_quantize), e.g. for K-quants our converter does not write.
            if (!Enum.TryParse<LLamaFtype>("MOSTLY_" + args[3], ignoreCase: true, out var type))
                throw new ArgumentException($"unknown type '{args[3]}' (e.g. q4_k_m, q5_k_m, q6_k, q8_0, q4_0)");
            NativeApi.llama_empty_call(); // LLamaQuantizer does not load the native library by itself
            if (!LLamaQuantizer.Quantize(args[1], args[2], type, Environment.ProcessorCount))
                throw new InvalidOperationException($"llama.cpp could not quantize {args[1]} to {type}");
            Console.WriteLine($"wrote {args[2]} ({type}, {new FileInfo(args[2]).Length / 1e6:F1} MB)");
            return 0;
        default:
            Console.WriteLine($"""
                llamacpp-peer run {SideBySideArguments.Usage}   # one JSON line, as kangaroo-perf vs-llamacpp prints
                llamacpp-peer quantize FROM.gguf TO.gguf q4_k_m|q5_k_m|q6_k|q8_0|q4_0|...
                (LLAMACPP_PEER_VERBOSE=1: all of llama.cpp's log on stderr, the native library it chose included)
                """);
            return args.Length == 0 ? 0 : 2;
    }
}
catch (Exception e) when (e is ArgumentException or IOException or UnauthorizedAccessException or InvalidOperationException or LLama.Exceptions.RuntimeError)
{
    Console.Error.WriteLine($"llamacpp-peer: {e.Message}");
    return 1;
}

// Which of LLamaSharp's native builds was loaded (noavx, avx, avx2, avx512) and what llama.cpp says it uses.
static string Describe()
{
    var library = NativeApi.GetLoadedNativeLibrary(NativeLibraryName.LLama)?.Metadata?.ToString() ?? "unknown";
    return $"{library}; {Marshal.PtrToStringUTF8(NativeApi.llama_print_system_info())}".Trim();
}

/// <summary>llama.cpp through LLamaSharp's low-level API: prompt ids fed as they are (no tokenizer,
/// no template), llama.cpp's own greedy sampler, EOS ignored so that every run decodes the same
/// number of tokens. Weights are memory-mapped and stay on the CPU.</summary>
internal sealed class LlamaCppEngine : ISideBySideEngine
{
    private readonly LLamaWeights _weights;
    private readonly LLamaContext _context;
    private readonly SafeLLamaSamplerChainHandle _greedy;
    private readonly LLamaBatch _batch = new();

    public LlamaCppEngine(SideBySideArguments a)
    {
        var parameters = new ModelParams(a.Model)
        {
            GpuLayerCount = 0,
            LoadMode = LLamaLoadMode.MemoryMap,
            ContextSize = (uint)a.Context,
            BatchSize = (uint)Math.Max(a.Prefill, a.PromptIds.Length),
            UBatchSize = (uint)Math.Max(a.Prefill, a.PromptIds.Length),
            Threads = a.Threads,
            BatchThreads = a.Threads,
        };
        _weights = LLamaWeights.LoadFromFile(parameters);
        _context = _weights.CreateContext(parameters);
        _greedy = SafeLLamaSamplerChainHandle.Create(LLamaSamplerChainParams.Default());
        _greedy.AddGreedySampler();
    }

    public int VocabSize => _weights.Vocab.Count;

    public (int[] Ids, double DecodeSeconds) Generate(int[] prompt, int tokens, Action firstToken)
    {
        // As our decoder: the prompt but its last token is one batch, then one token per forward pass.
        Prefill(prompt[..^1]);
        var ids = new int[tokens];
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var token = prompt[^1];
        for (var i = 0; i < tokens; i++)
        {
            _batch.Clear();
            _batch.Add(token, prompt.Length - 1 + i, LLamaSeqId.Zero, true);
            Decode();
            token = ids[i] = (int)_greedy.Sample(_context.NativeHandle, -1);
            if (i == 0) firstToken();
        }
        return (ids, clock.Elapsed.TotalSeconds);
    }

    public void Prefill(int[] tokens)
    {
        _context.NativeHandle.MemoryClear(true);
        _batch.Clear();
        for (var i = 0; i < tokens.Length; i++) _batch.Add(tokens[i], i, LLamaSeqId.Zero, false);
        if (tokens.Length > 0) Decode();
    }

    private void Decode()
    {
        var result = _context.NativeHandle.Decode(_batch);
        if (result != DecodeResult.Ok) throw new InvalidOperationException($"llama_decode: {result}");
    }

    public void Dispose()
    {
        _greedy.Dispose();
        _context.Dispose();
        _weights.Dispose();
    }
}
