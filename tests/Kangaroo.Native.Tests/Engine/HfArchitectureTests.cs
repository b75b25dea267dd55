using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;
using N = Kangaroo.Native.Loader.ModelCheckpoint.Names;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// What current Hugging Face configs add to Llama: q/k/v biases (Qwen2, attention_bias), scaled
/// rotary frequencies (rope_scaling "llama3" and "linear"), an explicit head_dim and tied weights
/// stored once. Small random checkpoints are written to disk and their logits compared, on every
/// device, with an independent float64 forward pass written here from the transformers formulas.
/// </summary>
public sealed class HfArchitectureTests(SharedDevices devices) : IClassFixture<SharedDevices>, IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private const int Dim = 32, Hidden = 48, Layers = 2, Heads = 4, KvHeads = 2, Vocab = 64, Positions = 64;
    private const double Theta = 10000, Eps = 1e-5;

    private sealed record Variant(string Name, JsonObject Config, int HeadDim, bool Bias, bool Tied, Func<double, double> Scale);

    /// <summary>The variants: Qwen2 with llama3 scaling (original context 64: the six frequencies of a
    /// 12-wide head fall in the kept, blended and divided bands) and head_dim 12 (not 32 / 4); Llama
    /// with attention_bias, linear scaling and the tied embedding stored only as lm_head.weight.</summary>
    private static Variant Describe(string name) => name switch
    {
        "qwen2-llama3" => new Variant(name, new JsonObject
        {
            ["model_type"] = "qwen2", ["head_dim"] = 12, ["tie_word_embeddings"] = false, ["sliding_window"] = 4, ["use_sliding_window"] = false,
            ["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 64 },
        }, 12, true, false, Llama3),
        "llama-linear-tied" => new Variant(name, new JsonObject
        {
            ["model_type"] = "llama", ["attention_bias"] = true, ["tie_word_embeddings"] = true,
            ["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 },
        }, Dim / Heads, true, true, f => f / 4),
        _ => throw new ArgumentException(name),
    };

    /// <summary>transformers' _compute_llama3_parameters for factor 8, low 1, high 4, original 64.</summary>
    private static double Llama3(double invFreq)
    {
        const double factor = 8, low = 1, high = 4, original = 64;
        var wavelen = 2 * Math.PI / invFreq;
        if (wavelen < original / high) return invFreq;
        if (wavelen > original / low) return invFreq / factor;
        var smooth = (original / wavelen - low) / (high - low);
        return (1 - smooth) * invFreq / factor + smooth * invFreq;
    }

    /// <summary>Writes config.json and model.safetensors of random weights; returns the weights by name.</summary>
    private Dictionary<string, double[]> WriteCheckpoint(string directory, Variant v, int seed)
    {
        Directory.CreateDirectory(directory);
        var config = new JsonObject
        {
            ["hidden_size"] = Dim, ["intermediate_size"] = Hidden, ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads,
            ["num_key_value_heads"] = KvHeads, ["vocab_size"] = Vocab, ["max_position_embeddings"] = Positions, ["rms_norm_eps"] = Eps,
            ["rope_theta"] = Theta, ["hidden_act"] = "silu", ["bos_token_id"] = 1, ["eos_token_id"] = 2,
        };
        foreach (var (key, value) in v.Config) config[key] = value?.DeepClone();
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJsonString());

        var random = new Random(seed);
        var weights = new Dictionary<string, double[]>();
        var tensors = new List<SafeTensorOutput>();
        var (qDim, kvDim) = (Heads * v.HeadDim, KvHeads * v.HeadDim);
        void Add(string name, double scale, double offset = 0, params int[] shape)
        {
            var values = Enumerable.Range(0, shape.Aggregate(1, (a, b) => a * b)).Select(_ => (float)(offset + scale * (2 * random.NextDouble() - 1))).ToArray();
            weights[name] = values.Select(x => (double)x).ToArray();
            tensors.Add(new SafeTensorOutput(name, ElementType.F32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray()));
        }
        Add(v.Tied ? N.LmHead : N.Embedding, 1, 0, Vocab, Dim);
        for (var l = 0; l < Layers; l++)
        {
            Add(N.Layer(l, N.AttentionNorm), 0.2, 1, Dim);
            Add(N.Layer(l, N.Query), 0.3, 0, qDim, Dim);
            Add(N.Layer(l, N.Key), 0.3, 0, kvDim, Dim);
            Add(N.Layer(l, N.Value), 0.3, 0, kvDim, Dim);
            if (v.Bias)
            {
                Add(N.Layer(l, N.QueryBias), 0.5, 0, qDim);
                Add(N.Layer(l, N.KeyBias), 0.5, 0, kvDim);
                Add(N.Layer(l, N.ValueBias), 0.5, 0, kvDim);
            }
            Add(N.Layer(l, N.Output), 0.3, 0, Dim, qDim);
            Add(N.Layer(l, N.FeedForwardNorm), 0.2, 1, Dim);
            Add(N.Layer(l, N.Gate), 0.3, 0, Hidden, Dim);
            Add(N.Layer(l, N.Up), 0.3, 0, Hidden, Dim);
            Add(N.Layer(l, N.Down), 0.3, 0, Dim, Hidden);
        }
        Add(N.FinalNorm, 0.2, 1, Dim);
        if (!v.Tied) Add(N.LmHead, 1, 0, Vocab, Dim);
        SafeTensorsWriter.Write(Path.Combine(directory, "model.safetensors"), tensors);
        if (v.Tied) weights[N.Embedding] = weights[N.LmHead];
        return weights;
    }

    /// <summary>The Hugging Face Llama/Qwen2 forward in float64: logits [tokens, vocab].</summary>
    private static double[][] ReferenceLogits(Dictionary<string, double[]> w, Variant v, int[] tokens)
    {
        var hd = v.HeadDim;
        var (qDim, kvDim, group) = (Heads * hd, KvHeads * hd, Heads / KvHeads);
        double[] MatVec(string name, double[] x, int rows)
        {
            var m = w[name];
            var cols = x.Length;
            return Enumerable.Range(0, rows).Select(r => Enumerable.Range(0, cols).Sum(c => m[r * cols + c] * x[c])).ToArray();
        }
        double[] Norm(double[] x, string weight)
        {
            var scale = 1 / Math.Sqrt(x.Average(e => e * e) + Eps);
            return x.Select((e, i) => e * scale * w[weight][i]).ToArray();
        }
        double[] AddBias(double[] x, string name) => v.Bias ? x.Select((e, i) => e + w[name][i]).ToArray() : x;
        // inv_freq = 1 / theta^(arange(0, hd, 2) / hd), then scaled; emb = cat(freqs, freqs); rotate_half(x) = cat(-x2, x1).
        var invFreq = Enumerable.Range(0, hd / 2).Select(i => v.Scale(1.0 / Math.Pow(Theta, 2.0 * i / hd))).ToArray();
        double[] Rope(double[] x, int heads, int pos)
        {
            var y = new double[x.Length];
            for (var h = 0; h < heads; h++)
            for (var i = 0; i < hd; i++)
            {
                var angle = pos * invFreq[i % (hd / 2)];
                var rotated = i < hd / 2 ? -x[h * hd + i + hd / 2] : x[h * hd + i - hd / 2];
                y[h * hd + i] = x[h * hd + i] * Math.Cos(angle) + rotated * Math.Sin(angle);
            }
            return y;
        }
        var keys = new List<double[]>[Layers];
        var values = new List<double[]>[Layers];
        for (var l = 0; l < Layers; l++) (keys[l], values[l]) = ([], []);
        var logits = new double[tokens.Length][];
        for (var pos = 0; pos < tokens.Length; pos++)
        {
            var x = w[N.Embedding].Skip(tokens[pos] * Dim).Take(Dim).ToArray();
            for (var l = 0; l < Layers; l++)
            {
                string L(string suffix) => N.Layer(l, suffix);
                var h = Norm(x, L(N.AttentionNorm));
                var q = Rope(AddBias(MatVec(L(N.Query), h, qDim), L(N.QueryBias)), Heads, pos);
                keys[l].Add(Rope(AddBias(MatVec(L(N.Key), h, kvDim), L(N.KeyBias)), KvHeads, pos));
                values[l].Add(AddBias(MatVec(L(N.Value), h, kvDim), L(N.ValueBias)));
                var attention = new double[qDim];
                for (var head = 0; head < Heads; head++)
                {
                    var kv = head / group * hd;
                    var scores = keys[l].Select(k => Enumerable.Range(0, hd).Sum(i => q[head * hd + i] * k[kv + i]) / Math.Sqrt(hd)).ToArray();
                    var max = scores.Max();
                    var p = scores.Select(s => Math.Exp(s - max)).ToArray();
                    var sum = p.Sum();
                    for (var t = 0; t < p.Length; t++)
                    for (var i = 0; i < hd; i++)
                        attention[head * hd + i] += p[t] / sum * values[l][t][kv + i];
                }
                x = x.Zip(MatVec(L(N.Output), attention, Dim), (a, b) => a + b).ToArray();
                h = Norm(x, L(N.FeedForwardNorm));
                var gate = MatVec(L(N.Gate), h, Hidden);
                var up = MatVec(L(N.Up), h, Hidden);
                var act = gate.Zip(up, (g, u) => g / (1 + Math.Exp(-g)) * u).ToArray();
                x = x.Zip(MatVec(L(N.Down), act, Dim), (a, b) => a + b).ToArray();
            }
            logits[pos] = MatVec(N.LmHead, Norm(x, N.FinalNorm), Vocab);
        }
        return logits;
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Qwen2WithLlama3RopeMatchesFloat64Reference(string kind) => AssertLogits(kind, "qwen2-llama3");

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void TiedLlamaWithBiasAndLinearRopeMatchesFloat64Reference(string kind) => AssertLogits(kind, "llama-linear-tied");

    private void AssertLogits(string kind, string variant)
    {
        var v = Describe(variant);
        var directory = _temp.File(variant);
        var weights = WriteCheckpoint(directory, v, seed: 11);
        var tokens = Enumerable.Range(0, 40).Select(i => (i * 37 + 5) % Vocab).ToArray();
        var expected = ReferenceLogits(weights, v, tokens);

        using var checkpoint = ModelCheckpoint.Open(directory);
        Assert.Equal(v.HeadDim, checkpoint.Config.HeadDim);
        Assert.True(checkpoint.Config.AttentionBias);
        using var model = new LlamaModel(checkpoint, devices.Get(kind));
        using var residual = model.AllocateResidual(tokens.Length);
        using var logits = model.AllocateLogits(tokens.Length);
        model.Embed(tokens, residual);
        model.RunBlocks(0, model.Layers, residual, ModelPasses.OneSequence(0, tokens.Length));
        model.Logits(residual, tokens.Length, logits);
        var actual = new float[tokens.Length * Vocab];
        model.Device.Download(logits, actual);
        for (var pos = 0; pos < tokens.Length; pos++)
        for (var t = 0; t < Vocab; t++)
            Assert.True(Math.Abs(actual[pos * Vocab + t] - expected[pos][t]) <= 1e-4 * (1 + Math.Abs(expected[pos][t])),
                $"{variant} on {kind}: logit [{pos}, {t}] is {actual[pos * Vocab + t]}, float64 reference {expected[pos][t]}");
    }

    /// <summary>Kangaroo's draft and verification run the same biased, scaled-RoPE blocks: it commits
    /// exactly what autoregressive decoding does.</summary>
    [Theory, DeviceData("cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void KangarooIsLosslessWithBiasesAndScaledRope(string kind)
    {
        var v = Describe("llama-linear-tied");
        var directory = _temp.File("kangaroo");
        WriteCheckpoint(directory, v, seed: 5);
        using var checkpoint = ModelCheckpoint.Open(directory);
        using var model = new LlamaModel(checkpoint, devices.Get(kind));
        int[] prompt = [1, 9, 17, 33];
        var expected = new AutoregressiveDecoder(model).Generate(prompt, 40, new SamplingOptions()).ToArray();
        using var head = new AdapterHead(model, AdapterWeights.Random(Dim, 1, 3));
        Assert.Equal(expected, new SelfSpeculativeDecoder(model, head, new SpeculationOptions(1, 5, 0.2f)).Generate(prompt, 40, new SamplingOptions()));
        Assert.Equal(expected, new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(1, 3, 0f)).Generate(prompt, 40, new SamplingOptions()));
    }
}
