using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// What the parts of a self-speculative round cost on one device, measured: one autoregressive step
/// (embed, every block, final norm, LM head, arg max); one draft step (the shallow blocks on one
/// row, the draft head and its arg max); the shallow pass of the round's last token, which is not
/// drafted from; and verification of k = 1..gamma+1 rows (the deep blocks, final norm, LM head and
/// arg max over k rows). A round with d drafts costs d draft steps + one shallow pass + verify(d + 1).
/// </summary>
public sealed record SpeculationCosts(
    [property: JsonPropertyName("autoregressive_step_ms")] double AutoregressiveStepMs,
    [property: JsonPropertyName("shallow_step_ms")] double ShallowStepMs,
    [property: JsonPropertyName("draft_step_ms")] double DraftStepMs,
    [property: JsonPropertyName("verify_ms")] double[] VerifyMs,
    [property: JsonPropertyName("draft_byte_ratio")] double DraftByteRatio)
{
    [JsonPropertyName("draft_ratio")]
    public double DraftRatio => DraftStepMs / AutoregressiveStepMs;

    [JsonPropertyName("verify_ratio")]
    public double[] VerifyRatio => VerifyMs.Select(v => v / AutoregressiveStepMs).ToArray();

    /// <summary>The most drafts a round can have with these measurements.</summary>
    [JsonIgnore]
    public int MaxDrafts => VerifyMs.Length - 1;

    /// <summary>Milliseconds of a round with <paramref name="drafts"/> drafts.</summary>
    public double RoundMs(int drafts) => drafts * DraftStepMs + ShallowStepMs + VerifyMs[drafts];

    /// <summary>
    /// Times each part on <paramref name="model"/>'s device with <paramref name="head"/> drafting at
    /// <paramref name="exitLayer"/>, for rounds of up to <paramref name="maxDrafts"/> drafts, at a
    /// short context (32 positions). The parts are timed in turn, round after round (so a change of
    /// machine load touches all of them alike), each synchronised, and the median is kept. Weight
    /// values do not matter, so an untrained head of the right shape gives the same costs. Leaves
    /// the model's and the head's caches empty.
    /// </summary>
    public static SpeculationCosts Measure(LlamaModel model, DraftHead head, int exitLayer, int maxDrafts)
    {
        using var generation = model.BeginGeneration(); // the caches are ours until the end
        var c = model.Config;
        var device = model.Device;
        var rows = maxDrafts + 1;
        if (maxDrafts >= LlamaModel.MaxBlockRows) throw new ArgumentException($"--draft-steps {maxDrafts} must be below {LlamaModel.MaxBlockRows}");
        var position = Math.Min(32, model.Context - rows);
        if (position < 1) throw new ArgumentException($"the context of {model.Context} positions is too short to time rounds of {maxDrafts} drafts");
        var tokens = Enumerable.Range(0, position + rows).Select(i => i == 0 ? c.BosId : (i * 7919 + 3) % c.VocabSize).ToArray();
        using var states = model.AllocateResidual(LlamaModel.MaxBlockRows);
        using var logits = model.AllocateLogits(rows);
        using var draftLogits = device.Allocate(head.Vocabulary);
        var top = new TopToken[rows];
        model.Cache.Truncate(0);
        head.Truncate(0);
        model.Prefill(tokens, position, states, exitLayer, (s, n, start) => head.Run(s, n, start, logits: null));

        void Reset(int count)
        {
            model.Cache.Truncate(position);
            head.Truncate(position);
            model.Embed(tokens.AsSpan(position, count), states);
        }
        var parts = new List<(Action Setup, Action Run)>
        {
            (() => Reset(1), () =>
            {
                model.RunBlocks(0, model.Layers, states, 1, position);
                model.Logits(states, 1, logits);
                device.ArgMax(logits, 1, c.VocabSize, top);
            }),
            (() => Reset(1), () =>
            {
                model.RunBlocks(0, exitLayer, states, 1, position);
                device.Synchronize();
            }),
            (() => Reset(1), () =>
            {
                model.RunBlocks(0, exitLayer, states, 1, position);
                head.Run(states, 1, position, draftLogits);
                device.ArgMax(draftLogits, 1, head.Vocabulary, top);
            }),
        };
        for (var k = 1; k <= rows; k++)
        {
            var count = k;
            parts.Add((() => Reset(count), () =>
            {
                model.RunBlocks(exitLayer, model.Layers, states, count, position);
                model.Logits(states, count, logits);
                device.ArgMax(logits, count, c.VocabSize, top.AsSpan(0, count));
            }));
        }
        var medians = MedianTimes(device, parts);
        model.Cache.Truncate(0);
        head.Truncate(0);
        var autoregressiveBytes = model.BlockBytes(0, model.Layers) + model.HeadBytes;
        var draftBytes = model.BlockBytes(0, exitLayer) + head.WeightBytes;
        return new SpeculationCosts(medians[0], medians[1], medians[2], medians[3..], (double)draftBytes / autoregressiveBytes);
    }

    /// <summary>Median milliseconds of each part, timed in rounds: at least 3 rounds, then more while
    /// they take under 1 s in all (at most 5 rounds past 100 ms, at most 200).</summary>
    private static double[] MedianTimes(ComputeDevice device, List<(Action Setup, Action Run)> parts)
    {
        foreach (var (setup, run) in parts) // warm-up: kernels compiled, buffers touched
        {
            setup();
            run();
        }
        var samples = parts.Select(_ => new List<double>()).ToArray();
        var clock = Stopwatch.StartNew();
        for (var round = 0; round < 3 || (clock.ElapsedMilliseconds < 1000 && (round < 5 || clock.ElapsedMilliseconds < 100) && round < 200); round++)
        {
            for (var i = 0; i < parts.Count; i++)
            {
                parts[i].Setup();
                device.Synchronize();
                var start = Stopwatch.GetTimestamp();
                parts[i].Run();
                samples[i].Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        }
        return samples.Select(s => s.Order().ElementAt(s.Count / 2)).ToArray();
    }

    /// <summary>The costs of a decoder's parts, from <paramref name="cache"/> when measured before for
    /// this model (and its weight types), device, exit layer, draft vocabulary and engine build, else
    /// measured (and stored).</summary>
    public static SpeculationCosts ForDecoder(LlamaModel model, DraftHead head, int exitLayer, int maxDrafts, SpeculationCostCache? cache)
    {
        var key = string.Join('|', model.Fingerprint, string.Join(',', model.WeightBytesByType.Keys.Order()), model.Device.Kind, model.Device.Name, $"exit {exitLayer}", $"{head.Name} vocab {head.Vocabulary}",
            $"drafts {maxDrafts}", typeof(ComputeDevice).Assembly.ManifestModule.ModuleVersionId, typeof(SpeculationCosts).Assembly.ManifestModule.ModuleVersionId);
        return cache?.Get(key) ?? Store(Measure(model, head, exitLayer, maxDrafts));

        SpeculationCosts Store(SpeculationCosts costs)
        {
            cache?.Put(key, costs);
            return costs;
        }
    }
}

/// <summary>Measured <see cref="SpeculationCosts"/> kept on disk, one small JSON file per key, so a
/// generation does not re-measure them every time. A missing, unreadable or foreign file is a miss;
/// a folder that cannot be written only means no caching.</summary>
public sealed class SpeculationCostCache(string directory)
{
    public string Directory { get; } = directory;

    /// <summary>KANGAROO_CACHE_DIR, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache on Unix,
    /// the local application data folder on Windows), under kangaroo/costs.</summary>
    public static SpeculationCostCache UserDefault()
    {
        var root = Environment.GetEnvironmentVariable("KANGAROO_CACHE_DIR") is { Length: > 0 } explicitRoot ? explicitRoot
            : OperatingSystem.IsWindows() ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData), "kangaroo")
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "kangaroo");
        return new SpeculationCostCache(Path.Combine(root, "costs"));
    }

    private sealed record Entry(string Key, SpeculationCosts Costs);

    private string PathOf(string key) => Path.Combine(Directory, Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..24] + ".json");

    public SpeculationCosts? Get(string key)
    {
        try
        {
            var entry = JsonSerializer.Deserialize<Entry>(File.ReadAllText(PathOf(key)));
            return entry is { Costs.VerifyMs.Length: > 0 } && entry.Key == key ? entry.Costs : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    public void Put(string key, SpeculationCosts costs)
    {
        try
        {
            System.IO.Directory.CreateDirectory(Directory);
            AtomicFile.Write(PathOf(key), stream => JsonSerializer.Serialize(stream, new Entry(key, costs)));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
