using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Decoding;

/// <summary>
/// One autoregressive step of several generations in a single pass through the model, as a server
/// does between requests: each generation still prefilling adds its next chunk of prompt positions,
/// each decoding one adds its last token, whose logits give its next token. Rows of other sequences
/// never change a row's result, so a generation's tokens are the same alone or beside others.
/// The generations' draft heads (<see cref="Sequence.Draft"/>), which must share an exit layer, are
/// given their sequences' exit-layer states.
/// </summary>
public sealed class AutoregressiveBatch : IDisposable
{
    private readonly LlamaModel _model;
    private readonly Batch _batch;
    private readonly DeviceTensor _residual, _last, _logits;
    private readonly float[] _distribution;
    private readonly List<(Generation Generation, int Row)> _decoding = [];
    private readonly List<(Generation Generation, int First, int Rows)> _rows = [];

    /// <summary>Allocates the pass's buffers on <paramref name="model"/>'s device.</summary>
    /// <param name="model">the model whose generations the batch steps.</param>
    /// <param name="rows">Rows of a pass: the most generations a step decodes, and the prefill chunk.</param>
    public AutoregressiveBatch(LlamaModel model, int rows = LlamaModel.MaxBlockRows)
    {
        _model = model;
        _batch = new Batch(rows);
        _residual = model.AllocateResidual(rows);
        _last = model.AllocateResidual(rows);
        _logits = model.AllocateLogits(rows);
        _distribution = new float[model.Config.VocabSize];
    }

    /// <summary>The most rows one step runs.</summary>
    public int Rows => _batch.Capacity;

    /// <summary>One step of each generation: decoding rows first, then prefill chunks in the rows left
    /// (a generation whose chunk does not fit waits for the next step). Commits each decoded token.</summary>
    public void Step(IReadOnlyList<Generation> generations)
    {
        if (generations.Count > Rows) throw new ArgumentException($"{generations.Count} generations exceed a step's {Rows} rows");
        foreach (var g in generations)
        {
            if (g.Finished) throw new InvalidOperationException("a generation in the step has finished");
            g.BeginStep();
        }
        _batch.Clear();
        _decoding.Clear();
        _rows.Clear();
        foreach (var g in generations.Where(g => g.Prefilled)) Add(g, 1);
        foreach (var g in generations.Where(g => !g.Prefilled && _batch.Count < Rows))
            Add(g, Math.Min(g.Sequence.Tokens.Count - 1 - g.Sequence.Cached, Rows - _batch.Count));
        if (_batch.Count == 0) return;

        var m = _model;
        _model.Embed(_batch.Tokens, _residual);
        var exit = _rows.Select(r => r.Generation.Sequence.Draft?.ExitLayer).FirstOrDefault(e => e is not null) ?? m.Layers;
        m.RunBlocks(0, exit, _residual, _batch);
        foreach (var (g, first, rows) in _rows)
            g.Sequence.Draft?.Follow(_residual.Slice(first * m.Config.Dim, rows * m.Config.Dim), _batch.Position(first), rows, exit);
        m.RunBlocks(exit, m.Layers, _residual, _batch);

        for (var i = 0; i < _decoding.Count; i++)
            m.Device.Copy(_residual.Slice(_decoding[i].Row * m.Config.Dim, m.Config.Dim), _last.Slice(i * m.Config.Dim, m.Config.Dim));
        m.Logits(_last, _decoding.Count, _logits);
        for (var i = 0; i < _decoding.Count; i++)
        {
            var g = _decoding[i].Generation;
            g.Stats.TargetForwardPasses++;
            g.Commit([Decoder.Choose(m.Device, _logits, i, g.Sampler, _distribution).Id]);
        }
        foreach (var (g, _, _) in _rows)
            if (!_decoding.Exists(d => d.Generation == g) && g.Prefilled) g.PrefillDone();
    }

    /// <summary>Adds the sequence's next <paramref name="rows"/> uncached tokens; one row of a prefilled
    /// sequence is its last token, to be decoded.</summary>
    private void Add(Generation g, int rows)
    {
        var s = g.Sequence;
        var start = s.Cached;
        var first = _batch.Add(s.Slot, start, System.Runtime.InteropServices.CollectionsMarshal.AsSpan(s.Tokens).Slice(start, rows));
        _rows.Add((g, first, rows));
        if (g.Prefilled) _decoding.Add((g, first));
    }

    /// <summary>Frees the pass's device buffers; the model and its generations stay.</summary>
    public void Dispose()
    {
        foreach (var t in new[] { _residual, _last, _logits }) t.Dispose();
    }
}
