namespace Kangaroo.Native.Tests.Engine;

/// <summary>
/// The golden llama2.c generations on the ILGPU devices, autoregressive and Kangaroo. The CPU
/// emulator checks the first 32 generated tokens of each prompt autoregressively and 16 with the
/// speculative decoders (it is slow, and they also run rejected drafts); OpenCL and CUDA check every token.
/// </summary>
public sealed class DeviceGenerationTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static int TokensToCheck(string kind, GoldenCase golden, Decoder decoder) =>
        kind != "ilgpu-cpu" ? golden.MaxNewTokens : decoder is AutoregressiveDecoder ? 32 : 16;

    [Theory, DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void AutoregressiveGreedyMatchesLlama2c(string kind)
    {
        using var model = TestModels.Stories(devices.Get(kind));
        AssertGolden(kind, new AutoregressiveDecoder(model));
    }

    [Theory, DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void KangarooGreedyMatchesLlama2c(string kind)
    {
        using var model = TestModels.Stories(devices.Get(kind));
        using var head = new AdapterHead(model, AdapterWeights.Random(model.Config.Dim, 2, 3));
        AssertGolden(kind, new SelfSpeculativeDecoder(model, head, new SpeculationOptions(2, 6, 0.3f)));
    }

    [Theory, DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void EarlyExitGreedyMatchesLlama2c(string kind)
    {
        using var model = TestModels.Stories(devices.Get(kind));
        AssertGolden(kind, new SelfSpeculativeDecoder(model, new ExitNormHead(model), new SpeculationOptions(4, 4, 0f)));
    }

    /// <summary>Prompts longer than <see cref="LlamaModel.MaxBlockRows"/> are prefilled in blocks of 64
    /// rows (every block op at full width, later blocks attending to earlier ones): teacher-force a golden
    /// continuation to a 150-token prompt, and the next tokens must still be llama2.c's.</summary>
    [Theory, DeviceData("cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void LongPromptsPrefilledInBlocksContinueLikeLlama2c(string kind)
    {
        const int promptLength = 150, check = 16;
        using var model = TestModels.Stories(devices.Get(kind));
        using var head = new AdapterHead(model, AdapterWeights.Random(model.Config.Dim, 2, 3));
        Decoder[] decoders = [new AutoregressiveDecoder(model), new SelfSpeculativeDecoder(model, head, new SpeculationOptions(2, 6, 0.3f))];
        var cases = GoldenCase.All.Where(g => g.PromptIds.Length + g.GeneratedIds.Length >= promptLength + check).ToList();
        Assert.NotEmpty(cases);
        foreach (var golden in cases)
        {
            var forced = golden.GeneratedIds.Length - (golden.PromptIds.Length + golden.GeneratedIds.Length - promptLength);
            int[] prompt = [.. golden.PromptIds, .. golden.GeneratedIds.Take(forced)];
            foreach (var decoder in decoders)
                Assert.Equal(golden.GeneratedIds.Skip(forced).Take(check), decoder.Generate(prompt, check, new SamplingOptions()));
        }
    }

    private static void AssertGolden(string kind, Decoder decoder)
    {
        foreach (var golden in GoldenCase.All)
        {
            var count = TokensToCheck(kind, golden, decoder);
            var generated = decoder.Generate(golden.PromptIds, count, new SamplingOptions()).ToArray();
            Assert.Equal(golden.GeneratedIds.Take(count), generated);
        }
    }
}
