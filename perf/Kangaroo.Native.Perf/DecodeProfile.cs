using System.Diagnostics;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Perf;

/// <summary>Where decode time goes: runs a decoder over a few prompts on a <see cref="TimingDevice"/>
/// and prints calls per token, time per call and share per operation, plus managed bytes allocated
/// per token; then the same decoder again on the bare device for tokens/s.</summary>
public static class DecodeProfile
{
    public static readonly string[] Prompts = ["Once upon a time", "One day, a little girl named Lily", "Tom and his dog", "The sun was shining and"];

    public static void Run(string modelPath, string deviceName, string decoderName, string? adapterPath, int tokens, int? exitLayer, int draftSteps, float threshold, int promptCount)
    {
        var inner = Devices.Create(deviceName);
        var timing = new TimingDevice(inner, synchronize: deviceName != "cpu");
        using var session = InferenceSession.Open(modelPath, () => timing);
        var prompts = Prompts.Take(promptCount).Select(p => session.Tokenizer?.Encode(p, addSpecialTokens: true) ?? [session.Model.Config.BosId]).ToList();
        var decoder = session.CreateDecoder(decoderName, adapterPath, exitLayer, draftSteps, threshold);
        var greedy = new SamplingOptions();
        _ = decoder.Generate(prompts[0], Math.Min(tokens, 8), greedy).ToList(); // warm-up, kernel compilation
        timing.Enabled = false;
        var bare = Measure.MedianOf(prompts.Select(p =>
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            var count = decoder.Generate(p, tokens, greedy).Count();
            var stats = decoder.Stats;
            Console.Error.WriteLine($"  prompt of {p.Length}: {count} tokens, {stats.DecodeTokensPerSecond:F1} tok/s, {(GC.GetTotalAllocatedBytes(precise: true) - before) / (double)count:F0} B/token allocated");
            return stats.DecodeTokensPerSecond;
        }));
        Console.WriteLine($"decode tokens/s (median over prompts, per-op timing off): {bare:F1}");
        timing.Enabled = true;
        timing.Reset();
        var generated = 0;
        var decodeSeconds = 0.0;
        var allocated = 0L;
        foreach (var prompt in prompts)
        {
            var before = GC.GetTotalAllocatedBytes(precise: true);
            generated += decoder.Generate(prompt, tokens, greedy).Count();
            allocated += GC.GetTotalAllocatedBytes(precise: true) - before;
            decodeSeconds += (decoder.Stats.Total - decoder.Stats.Prefill).TotalSeconds;
        }
        // Prefill calls are in the counts too; they are a small share with short prompts.
        var totalTicks = timing.Stats.Values.Sum(s => s.Ticks);
        Console.WriteLine($"profile: {modelPath} on {inner.Kind} ({inner.Name}), decoder {decoder.Name}, {generated} tokens over {prompts.Count} prompts, load {Measure.LoadAverage():F1}");
        Console.WriteLine($"decode with per-op timing: {generated / decodeSeconds:F1} tok/s; device calls per token {timing.Stats.Values.Sum(s => s.Calls) / (double)generated:F1}; managed allocation {allocated / (double)generated:F0} B/token");
        Console.WriteLine("| op | calls/token | us/call | share |\n|---|---|---|---|");
        foreach (var (op, (calls, ticks)) in timing.Stats.OrderByDescending(s => s.Value.Ticks))
            Console.WriteLine($"| {op} | {calls / (double)generated:F1} | {ticks * 1e6 / Stopwatch.Frequency / calls:F2} | {ticks / (double)totalTicks:P1} |");
    }
}

/// <summary>Greedy generation of the golden prompts on a device, compared with ../shared/golden's ids
/// (llama2.c's run.c output): the end-to-end check of a device, autoregressive and early-exit.</summary>
public static class GoldenCheck
{
    public static bool Run(string modelPath, string goldenPath, string deviceName, int maxTokens, Action<string> log)
    {
        using var session = InferenceSession.Open(modelPath, deviceName);
        var ok = true;
        foreach (var line in File.ReadLines(goldenPath).Where(l => l.Trim().Length > 0))
        {
            using var doc = JsonDocument.Parse(line);
            var prompt = doc.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
            var golden = doc.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).Take(maxTokens).ToArray();
            foreach (var name in new[] { "autoregressive", "early-exit" })
            {
                var decoder = session.CreateDecoder(name, exitLayer: Math.Max(1, session.Model.Layers / 2), draftSteps: 4, threshold: 0.3f);
                var ids = decoder.Generate(prompt, golden.Length, new SamplingOptions()).ToArray();
                var same = ids.SequenceEqual(golden);
                ok &= same;
                log($"| {deviceName} | {name} | prompt of {prompt.Length} | {golden.Length} tokens | {(same ? "identical" : $"DIFFERS at {ids.Zip(golden).TakeWhile(p => p.First == p.Second).Count()}")} |");
            }
        }
        return ok;
    }
}
