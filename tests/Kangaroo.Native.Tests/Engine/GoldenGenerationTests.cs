namespace Kangaroo.Native.Tests.Engine;

/// <summary>Greedy generation reproduces llama2.c's run.c token for token, on the <c>cpu</c> device and
/// on the reference device every kernel is tested against.</summary>
public sealed class GoldenGenerationTests
{
    public static IEnumerable<object[]> Cases => GoldenCase.Indices.SelectMany(i => new[] { new object[] { "cpu", i[0] }, ["reference", i[0]] });

    [Theory]
    [MemberData(nameof(Cases))]
    public void GreedyMatchesLlama2c(string kind, int index)
    {
        var golden = GoldenCase.All[index];
        using var model = TestModels.Stories(Devices.Create(kind));
        var decoder = new AutoregressiveDecoder(model);
        var generated = decoder.Generate(golden.PromptIds, golden.MaxNewTokens, new SamplingOptions()).ToArray();
        Assert.Equal(golden.GeneratedIds, generated);
        Assert.Equal(golden.Stop == "bos" ? StopReason.StopToken : StopReason.Length, decoder.Stop);
    }
}
