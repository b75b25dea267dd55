using System.Runtime.InteropServices;
using Kangaroo.Native.Engine.Training;
using static Kangaroo.Native.Tests.Training.Reference64;

namespace Kangaroo.Native.Tests.Training;

/// <summary>
/// The whole adapter: the loss and every parameter gradient that <see cref="AdapterGraph"/> computes
/// on a device (forward ops, soft cross-entropy through the frozen LM head, then the backward ops in
/// reverse) agree with the float64 reference of the adapter's loss and its central differences.
/// Bound per parameter tensor: max |device - numeric| &lt;= 2e-4 * max(|numeric|, 1e-3).
/// </summary>
public sealed class AdapterGradientTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    public const double Bound = 2e-4;

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void Graph_gradients_match_finite_differences(string kind)
    {
        foreach (var (dim, heads, vocab, rows) in new[] { (12, 2, 19, 1), (12, 2, 19, 5), (10, 1, 7, 3) })
            GraphGradientsMatchFiniteDifferences(kind, dim, heads, vocab, rows);
    }

    private void GraphGradientsMatchFiniteDifferences(string kind, int dim, int heads, int vocab, int rows)
    {
        const float eps = 1e-5f, theta = 10000f;
        var d = devices.Get(kind);
        var random = new Random(dim * 1000 + heads * 100 + vocab * 10 + rows);
        // Start away from the initial point (norm gains at 1) so that every term is exercised.
        var weights = AdapterWeights.Random(dim, 2, random.Next());
        foreach (var norm in new[] { weights.InputNorm, weights.OutputNorm })
            for (var i = 0; i < dim; i++) norm[i] = 0.5f + (float)random.NextDouble();
        var lmHead = RandomFloats(random, vocab * dim, 0.5);
        var states = RandomFloats(random, rows * dim, 2);
        var targets = RandomDistributions(random, rows, vocab);

        using var rotary = new RotaryTable(d, dim / heads, rows + 2, theta);
        using var head = d.UploadWeight(ElementType.F32, MemoryMarshal.AsBytes(lmHead.AsSpan()), vocab, dim);
        using var graph = new AdapterGraph(d, weights, heads, eps, head, rotary, rows + 1);
        using var s = d.Allocate(rows * dim);
        using var p = d.Allocate(rows * vocab);
        d.Upload(states, s);
        d.Upload(targets, p);
        var sums = graph.Accumulate(s, p, rows, 1f / rows, backward: true);
        var gradients = graph.DownloadGradients();

        var reference = new Adapter(ToDouble(weights.InputNorm), ToDouble(weights.Query), ToDouble(weights.Key),
            ToDouble(weights.Value), ToDouble(weights.Output), ToDouble(weights.OutputNorm));
        double[] s64 = ToDouble(states), p64 = ToDouble(targets), head64 = ToDouble(lmHead);
        double Loss() => AdapterLoss(reference, s64, p64, head64, rows, dim, heads, vocab, eps, theta);
        Assert.Equal(Loss(), sums.MeanLoss, 4);
        Assert.Equal(rows, sums.Positions);

        string[] names = ["input norm", "q", "k", "v", "o", "output norm"];
        for (var i = 0; i < names.Length; i++)
        {
            var error = RelativeError(gradients[i], NumericGradient(Loss, reference.All[i]));
            Assert.True(error <= Bound, $"{kind} dim={dim} heads={heads} vocab={vocab} rows={rows}, {names[i]}: relative error {error:G3} > {Bound}");
        }
    }

    [Fact]
    public void EvaluationLeavesGradientsAlone()
    {
        using var d = Devices.Create("cpu");
        var random = new Random(3);
        const int dim = 8, vocab = 11, rows = 4;
        using var rotary = new RotaryTable(d, 4, rows, 10000f);
        var lmHead = RandomFloats(random, vocab * dim);
        using var head = d.UploadWeight(ElementType.F32, MemoryMarshal.AsBytes(lmHead.AsSpan()), vocab, dim);
        using var graph = new AdapterGraph(d, AdapterWeights.Random(dim, 1, 4), 2, 1e-5f, head, rotary, rows);
        using var s = d.Allocate(rows * dim);
        using var p = d.Allocate(rows * vocab);
        d.Upload(RandomFloats(random, rows * dim), s);
        d.Upload(RandomDistributions(random, rows, vocab), p);
        var first = graph.Accumulate(s, p, rows, 0f, backward: false);
        Assert.All(graph.DownloadGradients(), g => Assert.All(g, v => Assert.Equal(0f, v)));
        Assert.Equal(first, graph.Accumulate(s, p, rows, 1f, backward: false));
    }
}
