using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>Greedy generation reproduces llama2.c's run.c token for token.</summary>
public sealed class GoldenGenerationTests
{
    [Theory]
    [MemberData(nameof(GoldenCase.Indices), MemberType = typeof(GoldenCase))]
    public void CpuGreedyMatchesLlama2c(int index)
    {
        var golden = GoldenCase.All[index];
        using var model = TestModels.Stories();
        var decoder = new AutoregressiveDecoder(model);
        var generated = decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray();
        Assert.Equal(golden.GeneratedIds, generated);
        Assert.Equal(golden.Stop == "bos" ? StopReason.StopToken : StopReason.Length, decoder.Stop);
    }
}
