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
    /// <summary>A draft step's cost relative to an autoregressive step.</summary>
    [JsonPropertyName("draft_ratio")]
    public double DraftRatio => DraftStepMs / AutoregressiveStepMs;

    /// <summary>Verification of k = 1..gamma+1 rows (index k - 1) relative to an autoregressive step.</summary>
    [JsonPropertyName("verify_ratio")]
    public double[] VerifyRatio => VerifyMs.Select(v => v / AutoregressiveStepMs).ToArray();

    /// <summary>The most drafts a round can have with these measurements.</summary>
    [JsonIgnore]
    public int MaxDrafts => VerifyMs.Length - 1;

    /// <summary>Milliseconds of one plain step of <paramref name="rows"/> sequences in one pass: an
    /// autoregressive step, scaled as verifying that many rows scales (measured up to gamma + 1 rows,
    /// extrapolated linearly past them). What a server prices batched plain decoding with.</summary>
    public double BatchStepMs(int rows)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        var v = VerifyMs;
        var ms = rows <= v.Length ? v[rows - 1] : v[^1] + (rows - v.Length) * (v.Length > 1 ? v[^1] - v[^2] : v[0]);
        return AutoregressiveStepMs * ms / v[0];
    }

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
        using var sequence = model.StartSequence(); // a cache slot of our own until the end
        var (c, device, slot) = (model.Config, model.Device, sequence.Slot);
        var rows = maxDrafts + 1;
        if (maxDrafts >= LlamaModel.MaxBlockRows) throw new ArgumentException($"--draft-steps {maxDrafts} must be below {LlamaModel.MaxBlockRows}");
        var position = Math.Min(32, model.Context - rows);
        if (position < 1) throw new ArgumentException($"the context of {model.Context} positions is too short to time rounds of {maxDrafts} drafts");
        var tokens = Enumerable.Range(0, position + rows).Select(i => i == 0 ? c.BosId : (i * 7919 + 3) % c.VocabSize).ToArray();
        using var states = model.AllocateResidual(LlamaModel.MaxBlockRows);
        using var logits = model.AllocateLogits(rows);
        using var draftLogits = device.Allocate(head.Vocabulary);
        var top = new TopToken[rows];
        var batch = new Batch(LlamaModel.MaxBlockRows);
        void Reset(int start, int count)
        {
            sequence.Truncate(start);
            head.Truncate(slot, start);
            batch.Clear();
            batch.Add(slot, start, tokens.AsSpan(start, count));
            model.Embed(batch.Tokens, states);
        }
        Reset(0, position); // the context the parts run at
        model.RunBlocks(0, exitLayer, states, batch);
        head.Run(states, slot, 0, position, null);
        model.RunBlocks(exitLayer, model.Layers, states, batch);

        var parts = new List<(Action Setup, Action Run)>
        {
            (() => Reset(position, 1), () =>
            {
                model.RunBlocks(0, model.Layers, states, batch);
                model.Logits(states, 1, logits);
                device.ArgMax(logits, 1, c.VocabSize, top);
            }),
            (() => Reset(position, 1), () =>
            {
                model.RunBlocks(0, exitLayer, states, batch);
                device.Synchronize();
            }),
            (() => Reset(position, 1), () =>
            {
                model.RunBlocks(0, exitLayer, states, batch);
                head.Run(states, slot, position, 1, draftLogits);
                device.ArgMax(draftLogits, 1, head.Vocabulary, top);
            }),
        };
        for (var k = 1; k <= rows; k++)
        {
            var count = k;
            parts.Add((() => Reset(position, count), () =>
            {
                model.RunBlocks(exitLayer, model.Layers, states, batch);
                model.Logits(states, count, logits);
                device.ArgMax(logits, count, c.VocabSize, top.AsSpan(0, count));
            }));
        }
        var medians = MedianTimes(device, parts);
        sequence.Truncate(0);
        head.Truncate(slot, 0);
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
        var key = string.Join('|', model.Fingerprint, string.Join(',', model.Weights.BytesByType.Keys.Order()), model.Device.Kind, model.Device.Name, $"exit {exitLayer}", $"{head.Name} vocab {head.Vocabulary}",
            $"drafts {maxDrafts}", typeof(ComputeDevice).Assembly.ManifestModule.ModuleVersionId, typeof(SpeculationCosts).Assembly.ManifestModule.ModuleVersionId);
        return cache?.Get(key) ?? Store(Measure(model, head, exitLayer, maxDrafts));

        SpeculationCosts Store(SpeculationCosts costs)
        {
            cache?.Put(key, costs);
            return costs;
        }
    }
}
