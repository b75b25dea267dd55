using System.Runtime.InteropServices;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;
using N = Kangaroo.Native.Loader.ModelCheckpoint.Names;

namespace Kangaroo.Native.Engine;

/// <summary>
/// A Llama-family decoder on a device: weights, rotary table, KV cache and scratch buffers, all
/// allocated once. The layer stack has an exit point: <see cref="RunBlocks"/> runs blocks [from, to)
/// over a block of positions on a residual stream the caller owns, so a full forward is
/// <see cref="Embed"/>, <c>RunBlocks(0, Layers)</c>, <see cref="Logits"/>, and a self-speculative
/// decoder can stop after the shallow blocks and continue with the deep ones later.
/// </summary>
public sealed class LlamaModel : IDisposable
{
    /// <summary>Rows per pass through the stack; longer blocks (prefill) run in chunks of this size.</summary>
    public const int MaxBlockRows = 64;

    /// <summary>A block's weights. The q, k and v projections are stacked into one [qDim + 2 kvDim, dim]
    /// product (their biases, when the model has them, into one vector) and gate and up into one
    /// [2 hiddenDim, dim], so each runs as one matmul launch where the parts share an element type.</summary>
    private sealed record Layer(
        DeviceWeight AttentionNorm, StackedWeight Qkv, DeviceTensor? QkvBias, DeviceWeight Output,
        DeviceWeight FeedForwardNorm, StackedWeight GateUp, DeviceWeight Down);

    /// <summary>Matrices [rows_i, cols] stacked into one [sum rows_i, cols] product: one weight where the
    /// parts share an element type, else one weight per run of parts of one type, each filling its columns
    /// of the output (each matrix keeps the type its file gave it: llama.cpp's Q4_K_M gives some layers'
    /// q and k Q4_K and their v Q6_K). Every output is the dot product one weight would compute.</summary>
    private sealed class StackedWeight(DeviceWeight[] parts)
    {
        private DeviceTensor? _output;
        private DeviceTensor[] _columns = [];

        public IReadOnlyList<DeviceWeight> Parts => parts;

        public long Bytes => parts.Sum(p => p.Bytes);

        /// <summary>output[r, :] = the parts' outputs side by side, for r in [0, rows).</summary>
        public void MatMul(ComputeDevice device, DeviceTensor input, DeviceTensor output, int rows)
        {
            if (parts is [var only])
            {
                device.MatMul(input, only, output, rows);
                return;
            }
            if (_output != output) // views from each part's first column, made once per output buffer
            {
                _columns = new DeviceTensor[parts.Length];
                for (int k = 0, offset = 0; k < parts.Length; offset += parts[k++].Rows) _columns[k] = output.Slice(offset, output.Length - offset);
                _output = output;
            }
            var width = parts.Sum(p => p.Rows);
            for (var k = 0; k < parts.Length; k++) device.MatMul(input, parts[k], _columns[k], rows, outputStride: width);
        }
    }

    private readonly List<DeviceWeight> _weights = [];
    private readonly Layer[] _layers;
    private readonly DeviceWeight _embedding;
    private readonly DeviceWeight _finalNorm;
    private readonly DeviceWeight _lmHead;
    private readonly DeviceTensor _normed, _qkv, _query, _attention, _gateUp, _hidden;

    public LlamaConfig Config { get; }
    public ComputeDevice Device { get; }
    public KvCache Cache { get; }
    public RotaryTable Rotary { get; }

    /// <summary>Bytes of weights on the device.</summary>
    public long WeightBytes { get; }

    /// <summary>The model's identity for adapters: shape and a fingerprint of its weights.</summary>
    public string Fingerprint { get; }

    public int Layers => Config.Layers;

    /// <summary>Positions the KV cache holds: the longest prompt plus generation this model can run.</summary>
    public int Context => Cache.Positions;

    /// <summary>The LM head [vocab, dim] (the embedding when tied). Adapter training reads it, frozen,
    /// to send the loss gradient back to the adapter.</summary>
    public DeviceWeight LmHead => _lmHead;

    /// <summary>Bytes of weights on the device per element type (q/k/v biases count as F32).</summary>
    public IReadOnlyDictionary<ElementType, long> WeightBytesByType { get; }

    /// <summary>Matrices left in their stored type when the model was quantized at load, because their
    /// rows are not whole blocks of 32 (stories260K's down projections, rows of 172).</summary>
    public IReadOnlyList<string> Unquantized => _unquantized;

    private readonly List<string> _unquantized = [];

    /// <param name="context">Positions of the KV cache; by default <see cref="DefaultContext"/>.</param>
    /// <param name="stopIds">Token ids that end generation besides the configuration's eos_token_id
    /// (the tokenizer's eos_token).</param>
    /// <param name="quantize">A block type (Q8_0, Q4_0): every matrix (the embedding and LM head included) is
    /// quantized as it is loaded, with llama.cpp's reference rounding, and stays quantized on the
    /// device; norm gains and biases stay as stored, and so do matrices whose rows are not whole
    /// blocks (<see cref="Unquantized"/>). Null: weights stay in their stored type.</param>
    public LlamaModel(ModelCheckpoint checkpoint, ComputeDevice device, int? context = null, IEnumerable<int>? stopIds = null, ElementType? quantize = null)
    {
        if (quantize is { } requested && requested.Info().Format is not { CanQuantize: true })
            throw new ArgumentException($"weights cannot be quantized to {requested}: expected one of {string.Join(", ", ElementTypes.Quantizable.Select(t => t.Type))}", nameof(quantize));
        var c = Config = checkpoint.Config with { EosIds = checkpoint.Config.EosIds.Union(stopIds ?? []).ToArray() };
        Device = device;
        DeviceWeight Load(string name, int rows, int cols)
        {
            if (cols != 0) return Stack(cols, (name, rows)).Parts.Single();
            var tensor = checkpoint.Read(name, rows);
            var weight = device.UploadWeight(tensor.Type, tensor.Bytes, 1, rows);
            _weights.Add(weight);
            return weight;
        }
        StackedWeight Stack(int cols, params (string Name, int Rows)[] parts)
        {
            var weights = UploadStacked(checkpoint, device, cols, quantize, parts);
            _weights.AddRange(weights);
            return new StackedWeight(weights);
        }

        _embedding = Load(N.Embedding, c.VocabSize, c.Dim);
        _layers = new Layer[c.Layers];
        for (var l = 0; l < c.Layers; l++)
        {
            string Name(string suffix) => N.Layer(l, suffix);
            _layers[l] = new Layer(
                Load(Name(N.AttentionNorm), c.Dim, 0),
                Stack(c.Dim, (Name(N.Query), c.QueryDim), (Name(N.Key), c.KvDim), (Name(N.Value), c.KvDim)),
                c.AttentionBias ? UploadBias(checkpoint, device, (Name(N.QueryBias), c.QueryDim), (Name(N.KeyBias), c.KvDim), (Name(N.ValueBias), c.KvDim)) : null,
                Load(Name(N.Output), c.Dim, c.QueryDim),
                Load(Name(N.FeedForwardNorm), c.Dim, 0),
                Stack(c.Dim, (Name(N.Gate), c.HiddenDim), (Name(N.Up), c.HiddenDim)),
                Load(Name(N.Down), c.Dim, c.HiddenDim));
        }
        _finalNorm = Load(N.FinalNorm, c.Dim, 0);
        _lmHead = c.TiedEmbeddings ? _embedding : Load(N.LmHead, c.VocabSize, c.Dim);
        var biasBytes = _layers.Sum(layer => 4L * (layer.QkvBias?.Length ?? 0));
        WeightBytes = _weights.Sum(w => w.Bytes) + biasBytes;
        var byType = _weights.GroupBy(w => w.Type).ToDictionary(g => g.Key, g => g.Sum(w => w.Bytes));
        if (biasBytes > 0) byType[ElementType.F32] = byType.GetValueOrDefault(ElementType.F32) + biasBytes;
        WeightBytesByType = byType;
        Fingerprint = ComputeFingerprint(checkpoint);

        var positions = CheckContext(c, device, WeightBytes, context);
        Cache = new KvCache(device, c.Layers, positions, c.KvDim);
        Rotary = new RotaryTable(device, positions, c.RopeFrequencies());
        _normed = device.Allocate(MaxBlockRows * c.Dim);
        _qkv = device.Allocate(MaxBlockRows * (c.QueryDim + 2 * c.KvDim));
        _query = device.Allocate(MaxBlockRows * c.QueryDim);
        _attention = device.Allocate(MaxBlockRows * c.QueryDim);
        _gateUp = device.Allocate(MaxBlockRows * 2 * c.HiddenDim);
        _hidden = device.Allocate(MaxBlockRows * c.HiddenDim);
    }

    /// <summary>KV cache and rotary bytes per position.</summary>
    private static long BytesPerPosition(LlamaConfig c) => 4L * (2L * c.Layers * c.KvDim + c.HeadDim);

    /// <summary>The context when the caller does not choose one: max_position_embeddings (at most
    /// sliding_window), shortened until the KV cache fits in half of the device memory the weights leave.</summary>
    public static int DefaultContext(LlamaConfig c, ComputeDevice device, long weightBytes)
    {
        var budget = Math.Max(0, (device.MemoryBytes - weightBytes) / 2);
        var fits = budget / BytesPerPosition(c);
        return (int)Math.Max(1, Math.Min(Math.Min(c.MaxSeqLen, c.SlidingWindow ?? int.MaxValue), Math.Min(fits, int.MaxValue / c.KvDim)));
    }

    /// <summary>The requested context, refused in one line when the model or the device cannot hold it.</summary>
    private static int CheckContext(LlamaConfig c, ComputeDevice device, long weightBytes, int? requested)
    {
        if (requested is not { } context) return DefaultContext(c, device, weightBytes);
        if (context < 1) throw new ArgumentException($"context {context} must be at least 1");
        if (context > c.MaxSeqLen)
            throw new ArgumentException($"context {context} exceeds the model's max_position_embeddings {c.MaxSeqLen}");
        if (context > c.SlidingWindow)
            throw new ArgumentException($"context {context} exceeds the model's sliding_window {c.SlidingWindow}: attention over a sliding window is not supported, choose a context up to {c.SlidingWindow}");
        var needed = context * BytesPerPosition(c);
        if ((long)context * c.KvDim > int.MaxValue || needed > device.MemoryBytes - weightBytes)
            throw new ArgumentException($"context {context} needs {needed >> 20} MiB of KV cache; {device.Kind} has {Math.Max(0, device.MemoryBytes - weightBytes) >> 20} MiB left after the weights");
        return context;
    }

    /// <summary>Biases [rows_i] one after another as one float vector, for <see cref="ComputeDevice.AddBias"/>.</summary>
    private static DeviceTensor UploadBias(ModelCheckpoint checkpoint, ComputeDevice device, params (string Name, int Rows)[] parts)
    {
        var values = parts.SelectMany(p => checkpoint.Read(p.Name, p.Rows).ToFloats()).ToArray();
        var bias = device.Allocate(values.Length);
        device.Upload(values, bias);
        return bias;
    }

    /// <summary>Uploads weights [rows_i, cols] one under another as [sum rows_i, cols] matrices, so that
    /// one matmul computes every projection (each output element is the same dot product as with the
    /// separate matrices): one matrix per run of consecutive parts of one element type, a single part as
    /// it is. The type is <paramref name="quantize"/> when given and the rows are whole blocks, otherwise
    /// each part's own. Quantized rows are whole blocks, so stacking them is stacking their bytes.</summary>
    private DeviceWeight[] UploadStacked(ModelCheckpoint checkpoint, ComputeDevice device, int cols, ElementType? quantize, params (string Name, int Rows)[] parts)
    {
        var types = parts.Select(p => checkpoint.Read(p.Name, p.Rows, cols).Type).ToArray();
        if (quantize is { } q)
        {
            if (cols % q.BlockLength() == 0) Array.Fill(types, q);
            else _unquantized.AddRange(parts.Select(p => p.Name));
        }
        var weights = new List<DeviceWeight>();
        for (var first = 0; first < parts.Length;)
        {
            var end = first + 1;
            while (end < parts.Length && types[end] == types[first]) end++;
            weights.Add(UploadRun(checkpoint, device, cols, types[first], parts[first..end]));
            first = end;
        }
        return [.. weights];
    }

    /// <summary>Parts stored in <paramref name="type"/>, or quantized to it, as one matrix.</summary>
    private static DeviceWeight UploadRun(ModelCheckpoint checkpoint, ComputeDevice device, int cols, ElementType type, (string Name, int Rows)[] parts)
    {
        var rows = parts.Sum(p => p.Rows);
        if (parts is [var only] && checkpoint.Read(only.Name, only.Rows, cols) is var single && single.Type == type)
            return device.UploadWeight(type, single.Bytes, rows, cols);
        var stacked = new byte[type.ByteCount(rows, cols)];
        var offset = 0;
        foreach (var (name, partRows) in parts)
        {
            var tensor = checkpoint.Read(name, partRows, cols);
            var target = stacked.AsSpan(offset, checked((int)type.ByteCount(partRows, cols)));
            if (tensor.Type == type) tensor.Bytes.CopyTo(target);
            else Quantize(tensor, type, target, $"{checkpoint.Source}: tensor '{name}'");
            offset += target.Length;
        }
        return device.UploadWeight(type, stacked, rows, cols);
    }

    private static void Quantize(TensorData tensor, ElementType type, Span<byte> target, string what)
    {
        try
        {
            Quantization.Quantize(type, tensor.ToFloats(), target);
        }
        catch (ArgumentException e)
        {
            throw new ModelFormatException($"{what}: cannot be quantized to {type}: {e.Message}");
        }
    }

    /// <summary>Shape plus a hash of the first row of the embedding and the final norm, as floats, so
    /// f32/f16/bf16 copies of one model share a fingerprint only when they agree to 16-bit precision.</summary>
    private static string ComputeFingerprint(ModelCheckpoint checkpoint)
    {
        var c = checkpoint.Config;
        var embedding = checkpoint.Read(N.Embedding, c.VocabSize, c.Dim);
        var row = new float[c.Dim];
        TensorData.Widen(embedding.Type, embedding.Bytes[..checked((int)embedding.Type.ByteCount(c.Dim))], row);
        var norm = checkpoint.Read(N.FinalNorm, c.Dim).ToFloats();
        var sum = 0.0;
        for (var i = 0; i < c.Dim; i++) sum += Math.Round(row[i] * 256) * (i + 1) + Math.Round(norm[i] * 256) * (i + 7);
        return $"llama-d{c.Dim}-h{c.HiddenDim}-l{c.Layers}-q{c.Heads}-kv{c.KvHeads}-v{c.VocabSize}-{(long)sum:x}";
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

    /// <summary>Claims the model (its KV cache) for one generation until the result is disposed. A second
    /// claim before that, from another thread or an unfinished enumeration, is refused: two generations
    /// would overwrite each other's cache.</summary>
    public IDisposable BeginGeneration()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (Interlocked.Exchange(ref _generating, 1) != 0)
            throw new InvalidOperationException(
                "the model is already generating (a decoder of it is in use on another thread, or an earlier Generate is still being enumerated); " +
                "a model runs one generation at a time: finish or dispose the other enumeration, or open another session");
        return new Generation(this);
    }

    private int _generating;
    private bool _disposed;

    private sealed class Generation(LlamaModel model) : IDisposable
    {
        private int _ended;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _ended, 1) == 0) Volatile.Write(ref model._generating, 0);
        }
    }

    /// <summary>residual[r, :] = embedding of tokens[r]; the device refuses ids outside the vocabulary.</summary>
    public void Embed(ReadOnlySpan<int> tokens, DeviceTensor residual) => Device.Embed(tokens, _embedding, residual);

    /// <summary>Runs tokens[from..count) through the whole stack at positions from..count-1 (the cache
    /// already holding positions 0..from-1), in chunks of
    /// <see cref="MaxBlockRows"/> using <paramref name="residual"/> (at least that many rows) as scratch.
    /// <paramref name="atExit"/>, when given, sees each chunk's residual stream after block
    /// <paramref name="exitLayer"/> as (states, rows, first position): how a draft head fills its cache.</summary>
    public void Prefill(IReadOnlyList<int> tokens, int count, DeviceTensor residual, int exitLayer = 0, Action<DeviceTensor, int, int>? atExit = null, int from = 0)
    {
        var chunk = new int[MaxBlockRows];
        for (var start = from; start < count; start += MaxBlockRows)
        {
            var n = Math.Min(MaxBlockRows, count - start);
            for (var i = 0; i < n; i++) chunk[i] = tokens[start + i];
            Embed(chunk.AsSpan(0, n), residual);
            RunBlocks(0, exitLayer, residual, n, start);
            atExit?.Invoke(residual, n, start);
            RunBlocks(exitLayer, Layers, residual, n, start);
        }
    }

    /// <summary>Runs blocks [from, to) over positions [startPos, startPos + rows) of the residual
    /// stream in place, writing those positions into the KV cache of each block run.</summary>
    public void RunBlocks(int from, int to, DeviceTensor residual, int rows, int startPos)
    {
        if (from < 0 || to > Layers || from > to) throw new ArgumentOutOfRangeException(nameof(from), $"blocks [{from}, {to}) are outside [0, {Layers})");
        for (var done = 0; done < rows; done += MaxBlockRows)
        {
            var n = Math.Min(MaxBlockRows, rows - done);
            var x = residual.Slice(done * Config.Dim, n * Config.Dim);
            for (var l = from; l < to; l++) Block(l, x, n, startPos + done);
        }
    }

    /// <summary>One decoder block over n positions: attention then SwiGLU feed-forward, each with a
    /// pre-norm and a residual connection.</summary>
    private void Block(int l, DeviceTensor x, int n, int pos)
    {
        var c = Config;
        var w = _layers[l];
        var d = Device;
        var (keys, values) = Cache.Append(l, pos, n);

        d.RmsNorm(x, w.AttentionNorm, _normed, n, c.NormEps);
        w.Qkv.MatMul(d, _normed, _qkv, n);
        if (w.QkvBias is not null) d.AddBias(_qkv, w.QkvBias, n);
        d.SplitQkv(_qkv, _query, keys, values, n, c.Heads, c.KvHeads, pos, Rotary);
        d.Attention(_query, Cache.Keys(l), Cache.Values(l), _attention, n, pos, c.Heads, c.KvHeads, c.HeadDim);
        d.MatMul(_attention, w.Output, x, n, accumulate: true);

        d.RmsNorm(x, w.FeedForwardNorm, _normed, n, c.NormEps);
        w.GateUp.MatMul(d, _normed, _gateUp, n);
        d.SwiGlu(_gateUp, _hidden, n, c.HiddenDim);
        d.MatMul(_hidden, w.Down, x, n, accumulate: true);
    }

    /// <summary>logits[r, :] = LMHead(FinalNorm(residual[r, :])) for r in [0, rows).</summary>
    public void Logits(DeviceTensor residual, int rows, DeviceTensor logits)
    {
        for (var done = 0; done < rows; done += MaxBlockRows)
        {
            var n = Math.Min(MaxBlockRows, rows - done);
            FinalNorm(residual.Slice(done * Config.Dim, n * Config.Dim), n, _normed);
            HeadLogits(_normed, n, logits.Slice(done * Config.VocabSize, n * Config.VocabSize));
        }
    }

    /// <summary>output[r, :] = FinalNorm(residual[r, :]) for r in [0, rows).</summary>
    public void FinalNorm(DeviceTensor residual, int rows, DeviceTensor output) => Device.RmsNorm(residual, _finalNorm, output, rows, Config.NormEps);

    /// <summary>logits = LMHead(hidden) without the final norm: the draft path of an adapter.</summary>
    public void HeadLogits(DeviceTensor hidden, int rows, DeviceTensor logits) => Device.MatMul(hidden, _lmHead, logits, rows);

    /// <summary>Bytes of the weights blocks [from, to) read in a pass.</summary>
    public long BlockBytes(int from, int to) => _layers[from..to].Sum(l => l.AttentionNorm.Bytes + l.Qkv.Bytes + l.Output.Bytes + l.FeedForwardNorm.Bytes + l.GateUp.Bytes + l.Down.Bytes);

    /// <summary>Bytes of the final norm and LM head read for one row of logits.</summary>
    public long HeadBytes => _finalNorm.Bytes + _lmHead.Bytes;

    /// <summary>Rows <paramref name="ids"/> of the LM head as a new [ids.Count, dim] weight in the head's
    /// own element type, or F32 for a quantized head (its dequantized values, exactly) (a draft
    /// vocabulary's head); the device refuses ids outside the vocabulary.</summary>
    public DeviceWeight GatherHeadRows(int[] ids)
    {
        var dim = Config.Dim;
        var values = new float[ids.Length * dim];
        using (var rows = Device.Allocate(ids.Length * dim))
        {
            Device.Embed(ids, _lmHead, rows);
            Device.Download(rows, values);
        }
        var type = _lmHead.Type.IsQuantized() ? ElementType.F32 : _lmHead.Type;
        var bytes = type switch // exact: the values were widened from this type
        {
            ElementType.F32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            ElementType.F16 => MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
            ElementType.BF16 => MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
            _ => throw ElementTypes.Unsupported(type, "the draft vocabulary's head"),
        };
        return Device.UploadWeight(type, bytes, ids.Length, dim);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var weight in _weights) weight.Dispose();
        foreach (var layer in _layers) layer.QkvBias?.Dispose();
        Cache.Dispose();
        Rotary.Dispose();
        foreach (var t in new[] { _normed, _qkv, _query, _attention, _gateUp, _hidden }) t.Dispose();
    }
}
