using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Perf;

/// <summary>Our half of <c>perf/vs-llamacpp.sh</c>: the model on the <c>cpu</c> device, decoded as
/// <c>kangaroo generate --decoder autoregressive</c> decodes (greedy; it stops at EOS, which the script
/// reports) and prefilled as <c>kangaroo bench</c> prefills. <c>bench</c> itself takes no prompt ids and
/// <c>generate</c> reports neither prefill nor the time to the first token, hence this command.</summary>
public sealed class KangarooSideBySide : ISideBySideEngine
{
    private readonly InferenceSession _session;
    private readonly Decoder _decoder;
    private readonly DeviceTensor _residual;

    private KangarooSideBySide(InferenceSession session)
    {
        _session = session;
        _decoder = session.CreateDecoder("autoregressive");
        _residual = session.Model.AllocateResidual(LlamaModel.MaxBlockRows);
    }

    public static int Run(IReadOnlyList<string> args)
    {
        var a = SideBySideArguments.Parse(args);
        // The cpu device runs Environment.ProcessorCount threads; DOTNET_PROCESSOR_COUNT sets that.
        if (a.Threads != Environment.ProcessorCount)
            throw new ArgumentException($"--threads {a.Threads}: the cpu device uses {Environment.ProcessorCount} here; run with DOTNET_PROCESSOR_COUNT={a.Threads}");
        return SideBySide.Run("kangaroo", a, () => new KangarooSideBySide(InferenceSession.Open(a.Model, "cpu", context: a.Context)),
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

    public void Prefill(int[] tokens)
    {
        var model = _session.Model;
        model.Cache.Truncate(0);
        model.Prefill(tokens, tokens.Length, _residual);
        model.Device.Synchronize();
    }

    public void Dispose()
    {
        _residual.Dispose();
        _decoder.Dispose();
        _session.Dispose();
    }
}
