using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// A sequence's draft head and the exit-layer states it has not seen yet: those of positions
/// <see cref="From"/>..<see cref="Covered"/>-1, kept until the head needs them (to draft) or the
/// backlog is full, then run through the head in one pass. Prefill, plain decoding steps and the
/// last position of a fully accepted round all add to it, so the head catches up with one pass over
/// many positions instead of one per position.
/// </summary>
internal sealed class DraftState : IDisposable
{
    private readonly ComputeDevice _device;
    private readonly DeviceTensor _backlog;
    private readonly int _dim;

    public DraftState(LlamaModel model, DraftHead head, int exitLayer, int slot)
    {
        (_device, Head, ExitLayer, Slot, _dim) = (model.Device, head, exitLayer, slot, model.Config.Dim);
        _backlog = model.AllocateResidual(LlamaModel.MaxBlockRows);
        From = Math.Min(head.Cached(slot), model.Cache.CommonLength(slot));
        head.Truncate(slot, From);
    }

    public DraftHead Head { get; }
    public int ExitLayer { get; }
    public int Slot { get; }

    /// <summary>The first position the head has not seen.</summary>
    public int From { get; private set; }

    /// <summary>States waiting in the backlog.</summary>
    public int Count { get; private set; }

    /// <summary>Positions whose exit-layer states the head has seen or holds in the backlog.</summary>
    public int Covered => From + Count;

    /// <summary>Takes the exit-layer states of positions start..start+rows-1, which continue what is covered.</summary>
    public void Follow(DeviceTensor states, int start, int rows, int exitLayer)
    {
        if (exitLayer != ExitLayer) throw new ArgumentException($"states of exit layer {exitLayer} given to a draft head at layer {ExitLayer}");
        if (start != Covered) throw new InvalidOperationException($"the draft head covers positions up to {Covered}, not {start}");
        if (Count + rows > LlamaModel.MaxBlockRows) CatchUp(null);
        if (rows >= LlamaModel.MaxBlockRows)
        {
            Head.Run(states, Slot, start, rows, null);
            From += rows;
            return;
        }
        _device.Copy(states.Slice(0, rows * _dim), _backlog.Slice(Count * _dim, rows * _dim));
        Count += rows;
    }

    /// <summary>Runs the head over the backlog; with <paramref name="logits"/>, the draft logits of its last position.</summary>
    public void CatchUp(DeviceTensor? logits)
    {
        if (Count == 0) return;
        Head.Run(_backlog, Slot, From, Count, logits);
        (From, Count) = (From + Count, 0);
    }

    /// <summary>Forgets positions at or after <paramref name="length"/>.</summary>
    public void Truncate(int length)
    {
        Head.Truncate(Slot, length);
        if (length < From) (From, Count) = (length, 0);
        else Count = Math.Min(Count, length - From);
    }

    public void Dispose() => _backlog.Dispose();
}
