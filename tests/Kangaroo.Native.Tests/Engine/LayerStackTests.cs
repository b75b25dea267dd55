using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>The exit point: a forward split at any layer, or run in blocks of any size, is the forward.</summary>
public sealed class LayerStackTests
{
    private static readonly int[] Tokens = GoldenCase.All[2].PromptIds.Concat(GoldenCase.All[2].GeneratedIds.Take(20)).ToArray();

    private static float[] Residual(LlamaModel model, Action<Kangaroo.Native.Kernels.DeviceTensor> run)
    {
        model.Cache.Truncate(0, 0);
        using var x = model.AllocateResidual(Tokens.Length);
        model.Embed(Tokens, x);
        run(x);
        var result = new float[Tokens.Length * model.Config.Dim];
        model.Device.Download(x, result);
        return result;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(4)]
    public void SplitAtTheExitLayerEqualsTheFullStack(int exit)
    {
        using var model = TestModels.Stories();
        var n = Tokens.Length;
        var full = Residual(model, x => model.RunBlocks(0, model.Layers, x, ModelPasses.OneSequence(0, n)));
        var split = Residual(model, x =>
        {
            model.RunBlocks(0, exit, x, ModelPasses.OneSequence(0, n));
            model.RunBlocks(exit, model.Layers, x, ModelPasses.OneSequence(0, n));
        });
        Assert.Equal(full, split);
    }

    [Fact]
    public void OnePositionAtATimeEqualsOneBlockBitForBit()
    {
        using var model = TestModels.Stories();
        var n = Tokens.Length;
        var block = Residual(model, x => model.RunBlocks(0, model.Layers, x, ModelPasses.OneSequence(0, n)));
        var dim = model.Config.Dim;
        var single = Residual(model, x =>
        {
            for (var p = 0; p < n; p++) model.RunBlocks(0, model.Layers, x.Slice(p * dim, dim), ModelPasses.OneSequence(p, 1));
        });
        Assert.Equal(block, single);
    }

    [Fact]
    public void TruncatedCacheRefusesHoles()
    {
        using var model = TestModels.Stories();
        using var x = model.AllocateResidual(1);
        model.Embed([1], x);
        model.Cache.Truncate(0, 0);
        var error = Assert.Throws<InvalidOperationException>(() => model.RunBlocks(0, 1, x, ModelPasses.OneSequence(3, 1)));
        Assert.Contains("cannot write at position 3", error.Message);
    }

    [Fact]
    public void SamplingIsDeterministicForASeed()
    {
        using var model = TestModels.Stories();
        var prompt = GoldenCase.All[1].PromptIds;
        var options = new SamplingOptions(Temperature: 0.9f, TopK: 40, TopP: 0.95f, Seed: 1234);
        var kangaroo = new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(3, 4, 0.2f));
        foreach (Decoder decoder in new Decoder[] { new AutoregressiveDecoder(model), kangaroo })
        {
            var first = decoder.Generate(prompt, 60, options).ToArray();
            Assert.Equal(first, decoder.Generate(prompt, 60, options).ToArray());
            Assert.NotEqual(first, decoder.Generate(prompt, 60, options with { Seed = 99 }).ToArray());
        }
    }
}
