using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Engine;

/// <summary>
/// A Llama-family transformer on a device: its weights, rotary table, KV cache and scratch buffers,
/// all allocated once. It only runs, as run.c's <c>forward</c> does: <see cref="Embed"/> the tokens of
/// a pass, <see cref="RunBlocks"/> over them, <see cref="Logits"/>. The layer stack has an exit point:
/// <see cref="RunBlocks"/> runs blocks [from, to) on a residual stream the caller owns, so a
/// self-speculative decoder can stop after the shallow blocks and continue with the deep ones later.
/// A pass may hold rows of several sequences (<see cref="Batch"/>), each in its own cache slot.
/// The model is not thread-safe: one pass at a time.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    /// <summary>Rows per pass through the stack; longer passes (prefill) run in chunks of this size.</summary>
    public const int MaxBlockRows = 64;

    private readonly AttentionBlock[] _attention;
    private readonly AttentionScratch _scratch;
    private readonly DeviceTensor _gateUp, _hidden;
    private bool _disposed;

    /// <summary>The model's hyperparameters; the EOS ids include the extra stop ids.</summary>
    public LlamaConfig Config { get; }
    /// <summary>The device the model runs on; the caller owns it.</summary>
    public ComputeDevice Device { get; }
    /// <summary>The weights on the device.</summary>
    public ModelWeights Weights { get; }
    /// <summary>The KV cache, one slot per sequence.</summary>
    public KvCache Cache { get; }
    /// <summary>The rotary embedding's cos/sin table for every position of the context.</summary>
    public RotaryTable Rotary { get; }

    /// <summary>Transformer blocks.</summary>
    public int Layers => Config.Layers;

    /// <summary>Positions the KV cache holds per sequence: the longest prompt plus generation this model can run.</summary>
    public int Context => Cache.Positions;

    /// <summary>The model's identity for adapters: shape and a fingerprint of its weights.</summary>
    public string Fingerprint => Weights.Fingerprint;

    /// <summary>The LM head [vocab, dim] (the embedding when tied).</summary>
    public DeviceWeight LmHead => Weights.LmHead;

    /// <summary>Loads <paramref name="checkpoint"/>'s weights onto <paramref name="device"/> and allocates the KV cache,
    /// rotary table and scratch buffers; the model owns them all, not the device.</summary>
    /// <param name="checkpoint">the model's configuration and tensors; read while the constructor runs.</param>
    /// <param name="device">where the model runs.</param>
    /// <param name="context">Positions of the KV cache per sequence; by default <see cref="ContextSize.Default"/>.</param>
    /// <param name="stopIds">Token ids that end generation besides the configuration's eos_token_id
    /// (the tokenizer's eos_token).</param>
    /// <param name="quantize">A block type (Q8_0, Q4_K, ...): matrices quantized as they are loaded (<see cref="ModelWeights.Load"/>).</param>
    /// <param name="sequences">Sequences that can generate at once (KV cache slots).</param>
    /// <param name="loaded">Told (blocks loaded, blocks) as each transformer block reaches the device.</param>
    public LlamaModel(ModelCheckpoint checkpoint, ComputeDevice device, int? context = null, IEnumerable<int>? stopIds = null, ElementType? quantize = null, int sequences = 1,
        Action<int, int>? loaded = null)
    {
        var c = Config = checkpoint.Config with { EosIds = checkpoint.Config.EosIds.Union(stopIds ?? []).ToArray() };
        Device = device;
        Weights = ModelWeights.Load(checkpoint, device, quantize, loaded);
        try
        {
            var positions = ContextSize.Choose(c, device, Weights.Bytes, context, sequences);
            Cache = new KvCache(device, c.Layers, positions, c.KvDim, sequences);
            Rotary = new RotaryTable(device, positions, c.RopeFrequencies());
            _attention = Weights.Layers.Select(w => new AttentionBlock(w.AttentionNorm, w.Qkv, w.QkvBias, w.Output, c.Heads, c.KvHeads, c.NormEps)).ToArray();
            _scratch = new AttentionScratch(device, MaxBlockRows, c.Dim, c.QueryDim, c.KvDim);
            _gateUp = device.Allocate(MaxBlockRows * 2 * c.HiddenDim);
            _hidden = device.Allocate(MaxBlockRows * c.HiddenDim);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Claims a free cache slot for a new sequence (<paramref name="preferred"/> when it is free).</summary>
    public Sequence StartSequence(int preferred = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var slot = Cache.TryClaim(preferred) ?? throw new InvalidOperationException(Cache.Slots == 1
            ? "the model is already generating (a decoder of it is in use on another thread, or an earlier Generate is still being enumerated); " +
              "a model runs one generation at a time: finish or dispose the other enumeration, or open another session"
            : $"the model is already generating {Cache.Slots} sequences, as many as it was opened for");
        return new Sequence(this, slot);
    }

    /// <summary>A residual-stream buffer for up to <paramref name="rows"/> positions.</summary>
    public DeviceTensor AllocateResidual(int rows)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Device.Allocate(checked(rows * Config.Dim));
    }

    /// <summary>A logits buffer for up to <paramref name="rows"/> positions.</summary>
    public DeviceTensor AllocateLogits(int rows)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Device.Allocate(checked(rows * Config.VocabSize));
    }

    /// <summary>residual[r, :] = embedding of tokens[r]; the device refuses ids outside the vocabulary.</summary>
    public void Embed(ReadOnlySpan<int> tokens, DeviceTensor residual)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Device.Embed(tokens, Weights.Embedding, residual);
    }

    /// <summary>Runs blocks [from, to) over the rows of <paramref name="batch"/> on the residual stream in
    /// place (row r of the batch is row r of the stream), writing each row's keys and values into its
    /// sequence's slot of the cache layers run; passes longer than <see cref="MaxBlockRows"/> run in chunks.</summary>
    public void RunBlocks(int from, int to, DeviceTensor residual, Batch batch)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (from < 0 || to > Layers || from > to) throw new ArgumentOutOfRangeException(nameof(from), $"blocks [{from}, {to}) are outside [0, {Layers})");
        for (var done = 0; done < batch.Count; done += MaxBlockRows)
        {
            var n = Math.Min(MaxBlockRows, batch.Count - done);
            var x = residual.Slice(done * Config.Dim, n * Config.Dim);
            for (var l = from; l < to; l++)
            {
                _attention[l].Run(x, batch, done, n, Cache, l, Rotary, _scratch);
                FeedForward(Weights.Layers[l], x, n);
            }
        }
    }

    /// <summary>The feed-forward half of a block: x += Wdown · (silu(Wgate · RMSNorm(x)) * Wup · RMSNorm(x)).</summary>
    private void FeedForward(ModelWeights.Layer w, DeviceTensor x, int n)
    {
        var d = Device;
        d.RmsNorm(x, w.FeedForwardNorm, _scratch.Normed, n, Config.NormEps);
        w.GateUp.MatMul(d, _scratch.Normed, _gateUp, n);
        d.SwiGlu(_gateUp, _hidden, n, Config.HiddenDim);
        d.MatMul(_hidden, w.Down, x, n, accumulate: true);
    }

    /// <summary>logits[r, :] = LMHead(FinalNorm(residual[r, :])) for r in [0, rows).</summary>
    public void Logits(DeviceTensor residual, int rows, DeviceTensor logits)
    {
        for (var done = 0; done < rows; done += MaxBlockRows)
        {
            var n = Math.Min(MaxBlockRows, rows - done);
            FinalNorm(residual.Slice(done * Config.Dim, n * Config.Dim), n, _scratch.Normed);
            HeadLogits(_scratch.Normed, n, logits.Slice(done * Config.VocabSize, n * Config.VocabSize));
        }
    }

    /// <summary>output[r, :] = FinalNorm(residual[r, :]) for r in [0, rows).</summary>
    public void FinalNorm(DeviceTensor residual, int rows, DeviceTensor output) => Device.RmsNorm(residual, Weights.FinalNorm, output, rows, Config.NormEps);

    /// <summary>logits = LMHead(hidden) without the final norm: the draft path of an adapter.</summary>
    public void HeadLogits(DeviceTensor hidden, int rows, DeviceTensor logits) => Device.MatMul(hidden, Weights.LmHead, logits, rows);

    /// <summary>Bytes of the weights blocks [from, to) read in a pass.</summary>
    public long BlockBytes(int from, int to) => Weights.Layers.Take(to).Skip(from).Sum(l => l.Bytes);

    /// <summary>Bytes of the final norm and LM head read for one row of logits.</summary>
    public long HeadBytes => Weights.FinalNorm.Bytes + Weights.LmHead.Bytes;

    /// <summary>Frees the weights, caches and scratch buffers.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Weights.Dispose();
        Cache?.Dispose();
        Rotary?.Dispose();
        _scratch?.Dispose();
        _gateUp?.Dispose();
        _hidden?.Dispose();
    }
}
