using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Kernels.Cpu;
using Kangaroo.Native.Kernels.Reference;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>stories260K converted to Hugging Face directories in f32, f16 and bf16, once per test class.</summary>
public sealed class ConvertedModels : IDisposable
{
    private readonly TempDirectory _root = new();

    public ConvertedModels()
    {
        using var source = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        foreach (var type in new[] { ElementType.F32, ElementType.F16, ElementType.BF16 })
            CheckpointConverter.Convert(source, Directory(type), type);
    }

    public string Directory(ElementType type) => _root.File(type.ToString());

    public void Dispose() => _root.Dispose();
}

/// <summary>
/// The model converted to a Hugging Face directory: in f32 it generates exactly the golden ids; in f16
/// and bf16 (weights kept 16-bit on the device) its logits stay within a stated distance of f32's and
/// its greedy generations follow the golden ones.
/// </summary>
public sealed class PrecisionTests(ConvertedModels converted) : IClassFixture<ConvertedModels>
{
    [Fact]
    public void ConvertedF32DirectoryGeneratesTheGoldenIds()
    {
        using var model = TestModels.Stories(new CpuDevice(), converted.Directory(ElementType.F32));
        var decoder = new AutoregressiveDecoder(model);
        foreach (var golden in GoldenCase.All)
            Assert.Equal(golden.GeneratedIds, decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray());
    }

    /// <summary>Largest logit error allowed, as a fraction of the largest |logit| of the f32 model over
    /// 64 positions: f16 keeps 11 significant bits (weights rounded by at most 2^-12 relative), bf16 8
    /// (2^-9); measured through the five blocks on cpu, ilgpu-cpu and opencl: f16 8.1e-4, bf16 5.4e-3.</summary>
    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void SixteenBitLogitsStayCloseToF32(string kind)
    {
        var tokens = GoldenCase.All[0].GeneratedIds.Take(kind == "ilgpu-cpu" ? 16 : 64).Prepend(1).ToArray();
        var reference = Logits(new ReferenceDevice(), converted.Directory(ElementType.F32), tokens);
        var scale = reference.Max(Math.Abs);
        foreach (var (type, bound) in LogitBound)
        {
            var logits = Logits(TestDevices.Create(kind), converted.Directory(type), tokens);
            var worst = logits.Zip(reference, (a, b) => Math.Abs(a - b)).Max() / scale;
            Console.WriteLine($"{kind} {type}: worst logit error {worst:E3} of the logit range");
            Assert.True(worst <= bound, $"{kind} {type}: logit error {worst:E3} of the range exceeds {bound}");
        }
    }

    /// <summary>Bounds of <see cref="SixteenBitLogitsStayCloseToF32"/>: largest logit error as a fraction of the range.</summary>
    private static readonly Dictionary<ElementType, double> LogitBound = new() { [ElementType.F16] = 0.003, [ElementType.BF16] = 0.02 };

    /// <summary>Greedy generation from 16-bit weights follows the golden f32 tokens, prompt by prompt. f16
    /// generates every golden id (measured: 64 of 64 on every prompt). bf16 may leave the golden story only
    /// at a close decision: its first difference must be at a step where the f32 model's top-2 logit margin
    /// is under twice bf16's logit error bound (so wherever the golden's margins are larger, the ids are
    /// exact), and every prompt keeps at least half of its tokens (measured: one story flips at token 36,
    /// where the margin is 0.005; the others follow all 64).</summary>
    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void SixteenBitGreedyFollowsTheGoldenTokens(string kind)
    {
        var count = kind == "ilgpu-cpu" ? 8 : 64;
        var margins = GoldenCase.All.Select(golden => GoldenMargins(golden, count)).ToList();
        foreach (var (type, required) in new[] { (ElementType.F16, 1.0), (ElementType.BF16, 0.5) })
        {
            using var model = TestModels.Stories(TestDevices.Create(kind), converted.Directory(type));
            var decoder = new AutoregressiveDecoder(model);
            var failures = new List<string>();
            var report = new List<string>();
            foreach (var (golden, i) in GoldenCase.All.Select((g, i) => (g, i)))
            {
                var generated = decoder.Generate(golden.PromptIds, Math.Min(count, golden.MaxNewTokens), new SamplingOptions()).ToArray();
                var agreeing = generated.Zip(golden.GeneratedIds).TakeWhile(p => p.First == p.Second).Count();
                var agreement = agreeing / (double)generated.Length;
                report.Add(agreement.ToString("F2"));
                if (agreement < required) failures.Add($"{golden}: {agreeing} of {generated.Length} tokens agree, below {required:P0}");
                if (agreeing < generated.Length)
                {
                    var (margin, range) = (margins[i].Margins[agreeing], margins[i].Range);
                    var close = 2 * LogitBound[type] * range;
                    if (margin >= close) failures.Add($"{golden}: differs at token {agreeing}, where the golden's top-2 margin {margin:F3} is not below {close:F3} (twice the logit error bound)");
                }
            }
            Console.WriteLine($"{kind} {type}: greedy agreement per prompt {string.Join(" ", report)}");
            Assert.True(failures.Count == 0, $"{kind} {type}: {string.Join("; ", failures)}");
        }
    }

    /// <summary>The f32 model's top-2 logit margin at each of the first <paramref name="count"/> golden steps
    /// (its top token checked to be the golden one), and the largest |logit| over them.</summary>
    private (double[] Margins, double Range) GoldenMargins(GoldenCase golden, int count)
    {
        var steps = Math.Min(count, golden.GeneratedIds.Length);
        var tokens = golden.PromptIds.Concat(golden.GeneratedIds.Take(steps - 1)).ToArray();
        var logits = Logits(new ReferenceDevice(), converted.Directory(ElementType.F32), tokens);
        var vocab = logits.Length / tokens.Length;
        var margins = new double[steps];
        for (var k = 0; k < steps; k++)
        {
            var row = logits.AsSpan((golden.PromptIds.Length - 1 + k) * vocab, vocab);
            var top = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(row);
            Assert.Equal(golden.GeneratedIds[k], top);
            var second = float.NegativeInfinity;
            for (var v = 0; v < vocab; v++) if (v != top) second = Math.Max(second, row[v]);
            margins[k] = row[top] - second;
        }
        return (margins, logits.Max(Math.Abs));
    }

    private static float[] Logits(ComputeDevice device, string modelPath, int[] tokens)
    {
        using (device)
        using (var model = TestModels.Stories(device, modelPath))
        {
            var n = tokens.Length;
            using var residual = model.AllocateResidual(n);
            using var logits = model.AllocateLogits(n);
            model.Embed(tokens, residual);
            model.RunBlocks(0, model.Layers, residual, ModelPasses.OneSequence(0, n));
            model.Logits(residual, n, logits);
            var result = new float[n * model.Config.VocabSize];
            device.Download(logits, result);
            return result;
        }
    }
}
