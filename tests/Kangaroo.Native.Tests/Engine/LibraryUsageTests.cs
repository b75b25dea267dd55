namespace Kangaroo.Native.Tests.Engine;

/// <summary>README's "Use it from .NET" example, run as written (the model path aside): the
/// session API a program embeds, and Kangaroo through it giving the autoregressive text.</summary>
public sealed class LibraryUsageTests
{
    [Fact]
    public void ReadmeExampleGeneratesWhatAutoregressiveDecodingGenerates()
    {
        // --- as in README.md ---
        using var session = InferenceSession.Open(SharedData.EmbeddedModel, "cpu");
        using var decoder = session.CreateDecoder("auto");  // Kangaroo where it pays on this device (the adapter lies beside the model)
        var prompt = session.EncodePrompt("Once upon a time");
        var ids = decoder.Generate(prompt, maxNewTokens: 64, new SamplingOptions()).ToList();
        var text = session.Tokenizer!.Decode(ids);
        var why = decoder is SelfSpeculativeDecoder { Controller: { } auto } ? auto.Plan.Describe() : decoder.Name;
        // --- end ---
        var reference = session.CreateDecoder("autoregressive").Generate(prompt, 64, new SamplingOptions()).ToList();
        Assert.Equal("auto", decoder.Name);
        Assert.Equal(reference, ids);
        Assert.Equal(session.Tokenizer.Decode(reference), text);
        Assert.Matches("^(speculate with gamma|autoregressive)", why);
    }
}
