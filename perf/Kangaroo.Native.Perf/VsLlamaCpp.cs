using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;

namespace Kangaroo.Native.Perf;

/// <summary>Our half of <c>perf/vs-llamacpp.sh</c>: the model on the <c>cpu</c> device, decoded as
/// <c>kangaroo generate --decoder autoregressive</c> decodes (greedy; it stops at EOS, which the script
/// reports) and prefilled as <c>kangaroo bench</c> prefills. <c>bench</c> itself takes no prompt ids and
/// <c>generate</c> reports neither prefill nor the time to the first token, hence this command.</summary>
public sealed class KangarooSideBySide : ISideBySideEngine
{
    private readonly InferenceSession _session;
    private readonly Decoder _decoder;

    private KangarooSideBySide(InferenceSession session)
    {
        _session = session;
        _decoder = session.CreateDecoder("autoregressive");
    }

    public static int Run(IReadOnlyList<string> args)
    {
        var a = SideBySideArguments.Parse(args);
        return SideBySide.Run("kangaroo", a, () => new KangarooSideBySide(InferenceSession.Open(a.Model, "cpu", context: a.Context, threads: a.Threads)),
            e => ((KangarooSideBySide)e)._session.Device.Name);
    }

    public int VocabSize => _session.Model.Config.VocabSize;

    public (int[] Ids, double DecodeSeconds) Generate(int[] prompt, int tokens, Action firstToken)
    {
        var ids = new List<int>(tokens);
        foreach (var token in _decoder.Generate(prompt, tokens, new SamplingOptions()))
        {
            if (ids.Count == 0) firstToken();
            ids.Add(token);
        }
        return (ids.ToArray(), (_decoder.Stats.Total - _decoder.Stats.Prefill).TotalSeconds);
    }

    /// <summary>Puts every position of <paramref name="tokens"/> in the cache, as the prompt of a generation is prefilled.</summary>
    public void Prefill(int[] tokens)
    {
        using var generation = _decoder.Start([.. tokens, 0], 1, new SamplingOptions());
        while (!generation.Prefilled) _decoder.Step(generation);
        _session.Model.Device.Synchronize();
    }

    public void Dispose()
    {
        _decoder.Dispose();
        _session.Dispose();
    }
}
