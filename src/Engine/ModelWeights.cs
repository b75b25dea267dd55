using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;
using N = Kangaroo.Native.Loader.ModelCheckpoint.Names;

namespace Kangaroo.Native.Engine;

/// <summary>
/// A model's weights on a device, loaded from a checkpoint: each tensor read (and its values checked)
/// once, quantized as it is loaded when asked, and the q, k and v projections stacked into one
/// [qDim + 2 kvDim, dim] product (their biases into one vector) and gate and up into one
/// [2 hiddenDim, dim] (<see cref="StackedWeight"/>), so each runs as one matmul launch where the parts
/// share an element type. Each matrix keeps its stored type unless quantized at load.
/// </summary>
public sealed class ModelWeights : IDisposable
{
    /// <summary>One transformer block's weights.</summary>
    public sealed record Layer(
        DeviceWeight AttentionNorm, StackedWeight Qkv, DeviceTensor? QkvBias, DeviceWeight Output,
        DeviceWeight FeedForwardNorm, StackedWeight GateUp, DeviceWeight Down)
    {
        /// <summary>Bytes a pass over the block reads.</summary>
        public long Bytes => AttentionNorm.Bytes + Qkv.Bytes + Output.Bytes + FeedForwardNorm.Bytes + GateUp.Bytes + Down.Bytes;
    }

    private readonly List<DeviceWeight> _owned = [];
    private readonly List<string> _unquantized = [];
    private DeviceTensor[] _biases = [];

    /// <summary>The transformer blocks, in order.</summary>
    public IReadOnlyList<Layer> Layers { get; private set; } = [];
    /// <summary>The token embedding [vocab, dim].</summary>
    public DeviceWeight Embedding { get; private set; } = null!;
    /// <summary>The final RMSNorm gain [dim].</summary>
    public DeviceWeight FinalNorm { get; private set; } = null!;

    /// <summary>The LM head [vocab, dim]: the embedding when they are tied.</summary>
    public DeviceWeight LmHead { get; private set; } = null!;

    /// <summary>Bytes of weights on the device.</summary>
    public long Bytes { get; private set; }

    /// <summary>Bytes of weights on the device per element type (q/k/v biases count as F32).</summary>
    public IReadOnlyDictionary<ElementType, long> BytesByType { get; private set; } = new Dictionary<ElementType, long>();

    /// <summary>Matrices left in their stored type when the model was quantized at load, because their
    /// rows are not whole blocks (stories260K's down projections, rows of 172).</summary>
    public IReadOnlyList<string> Unquantized => _unquantized;

    /// <summary>The model's identity for adapters: shape and a fingerprint of its weights.</summary>
    public string Fingerprint { get; private set; } = "";

    /// <summary>Reads every tensor of <paramref name="checkpoint"/> once, checks its values and uploads it.</summary>
    /// <param name="checkpoint">the model's configuration and tensors.</param>
    /// <param name="device">where the weights go. The returned weights own their buffers; a device that reads
    /// host memory (<c>cpu</c>) uses the bytes of a memory-mapped file in place, holding the map open until the
    /// weights are disposed, whenever the checkpoint is.</param>
    /// <param name="quantize">A block type of <see cref="ElementTypes.Quantizable"/> (Q8_0, Q4_K, ...): every matrix (the embedding and LM head included) is
    /// quantized as it is loaded, with llama.cpp's reference rounding, and stays quantized on the
    /// device; norm gains and biases stay as stored, and so do matrices whose rows are not whole blocks
    /// (<see cref="Unquantized"/>). Null: weights stay in their stored type.</param>
    /// <param name="loaded">Told (blocks loaded, blocks) as each transformer block reaches the device.</param>
    public static ModelWeights Load(ModelCheckpoint checkpoint, ComputeDevice device, ElementType? quantize = null, Action<int, int>? loaded = null)
    {
        if (quantize is { } requested && requested.Info().Format is not { CanQuantize: true })
            throw new ArgumentException($"weights cannot be quantized to {requested}: expected one of {string.Join(", ", ElementTypes.Quantizable.Select(t => t.Type))}", nameof(quantize));
        var weights = new ModelWeights();
        try
        {
            weights.LoadAll(checkpoint, device, quantize, loaded);
            return weights;
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    private void LoadAll(ModelCheckpoint checkpoint, ComputeDevice device, ElementType? quantize, Action<int, int>? loaded)
    {
        var c = checkpoint.Config;
        DeviceWeight Vector(string name) => Upload(device, checkpoint, 0, null, (name, c.Dim));
        DeviceWeight Matrix(int cols, (string Name, int Rows) part) => Upload(device, checkpoint, cols, quantize, part);
        StackedWeight Stack(int cols, params (string Name, int Rows)[] parts) => new(
            [.. Runs(parts, p => Target(checkpoint, p.Name, cols, quantize)).Select(run => Upload(device, checkpoint, cols, quantize, run))]);

        Embedding = Matrix(c.Dim, (N.Embedding, c.VocabSize));
        var layers = new Layer[c.Layers];
        var biases = new List<DeviceTensor>();
        for (var l = 0; l < c.Layers; l++)
        {
            string Name(string suffix) => N.Layer(l, suffix);
            DeviceTensor? bias = null;
            if (c.AttentionBias) biases.Add(bias = Bias(device, checkpoint, (Name(N.QueryBias), c.QueryDim), (Name(N.KeyBias), c.KvDim), (Name(N.ValueBias), c.KvDim)));
            layers[l] = new Layer(
                Vector(Name(N.AttentionNorm)),
                Stack(c.Dim, (Name(N.Query), c.QueryDim), (Name(N.Key), c.KvDim), (Name(N.Value), c.KvDim)),
                bias,
                Matrix(c.QueryDim, (Name(N.Output), c.Dim)),
                Vector(Name(N.FeedForwardNorm)),
                Stack(c.Dim, (Name(N.Gate), c.HiddenDim), (Name(N.Up), c.HiddenDim)),
                Matrix(c.HiddenDim, (Name(N.Down), c.Dim)));
            loaded?.Invoke(l + 1, c.Layers);
        }
        Layers = layers;
        _biases = [.. biases];
        FinalNorm = Vector(N.FinalNorm);
        LmHead = c.TiedEmbeddings ? Embedding : Matrix(c.Dim, (N.LmHead, c.VocabSize));

        var biasBytes = _biases.Sum(b => 4L * b.Length);
        Bytes = _owned.Sum(w => w.Bytes) + biasBytes;
        var byType = _owned.GroupBy(w => w.Type).ToDictionary(g => g.Key, g => g.Sum(w => w.Bytes));
        if (biasBytes > 0) byType[ElementType.F32] = byType.GetValueOrDefault(ElementType.F32) + biasBytes;
        BytesByType = byType;
    }

    /// <summary>The type a tensor of <paramref name="cols"/> columns is uploaded in: <paramref name="quantize"/>
    /// when given and its rows are whole blocks, otherwise its stored type.</summary>
    private static ElementType Target(ModelCheckpoint checkpoint, string name, int cols, ElementType? quantize) =>
        quantize is { } q && cols % q.BlockLength() == 0 ? q : checkpoint.TypeOf(name);

    /// <summary>Runs of consecutive parts of one <paramref name="type"/>, in order.</summary>
    private static IEnumerable<(string Name, int Rows)[]> Runs((string Name, int Rows)[] parts, Func<(string Name, int Rows), ElementType> type)
    {
        for (var first = 0; first < parts.Length;)
        {
            var end = first + 1;
            while (end < parts.Length && type(parts[end]) == type(parts[first])) end++;
            yield return parts[first..end];
            first = end;
        }
    }

    /// <summary>Uploads weights [rows_i, cols] of one target type (<see cref="Target"/>) one under another as
    /// one [sum rows_i, cols] matrix, each part read once (cols = 0: a vector of rows_0 values). Each output
    /// element of the stacked matrix is the same dot product as with the separate matrices. Quantized rows
    /// are whole blocks, so stacking them is stacking their bytes. A part whose bytes are the file's own, in
    /// the target type, goes to the device with a lease on the file's map (<see cref="ModelCheckpoint.Lease"/>),
    /// for a device that reads host memory to use in place; the others (permuted, quantized) are read a block
    /// of rows at a time into one unmanaged buffer (no garbage, nothing kept), which the device copies.</summary>
    private unsafe DeviceWeight Upload(ComputeDevice device, ModelCheckpoint checkpoint, int cols, ElementType? quantize, params (string Name, int Rows)[] parts)
    {
        var type = Target(checkpoint, parts[0].Name, cols, quantize);
        if (quantize is { } q && cols % q.BlockLength() != 0) _unquantized.AddRange(parts.Select(p => p.Name));
        var width = cols == 0 ? parts[0].Rows : cols;
        var rowBytes = type.RowBytes(width);
        var rows = new WeightRows[parts.Length];
        byte* buffer = null; // the copied parts, one after another
        long offset = 0;
        try
        {
            for (var k = 0; k < parts.Length; k++)
            {
                var (name, partRows) = parts[k];
                int[] shape = cols == 0 ? [partRows] : [partRows, cols];
                rows[k] = new WeightRows(0, cols == 0 ? 1 : partRows, checkpoint.TypeOf(name) == type ? checkpoint.Lease(name) : null);
                if (rows[k].Lease is not null)
                {
                    var tensor = checkpoint.Read(name, shape);
                    if (name == N.Embedding) Fingerprint = ComputeFingerprint(checkpoint, tensor);
                    rows[k] = rows[k] with { Address = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(tensor.Bytes)) };
                    continue;
                }
                if (buffer == null) buffer = (byte*)NativeMemory.Alloc((nuint)(parts.Skip(k).Sum(p => cols == 0 ? 1L : p.Rows) * rowBytes));
                var start = (nint)(buffer + offset);
                checkpoint.ReadRows(name, shape, (block, first) =>
                {
                    if (name == N.Embedding && first == 0) Fingerprint = ComputeFingerprint(checkpoint, block);
                    var target = new Span<byte>((void*)(start + (nint)(first * rowBytes)), checked((int)type.ByteCount(block.Shape)));
                    if (block.Type == type) block.Bytes.CopyTo(target);
                    else if (block.CountNonFinite() == 0) Quantize(block, type, target, $"{checkpoint.Source}: tensor '{name}'"); // else ReadRows names them after the last block
                });
                rows[k] = rows[k] with { Address = start };
                offset += rows[k].Rows * rowBytes;
            }
            var weight = device.UploadWeight(type, rows, width); // the device has the leases now
            rows = [];
            _owned.Add(weight);
            return weight;
        }
        finally
        {
            foreach (var part in rows) part.Lease?.Dispose();
            NativeMemory.Free(buffer);
        }
    }

    /// <summary>Biases [rows_i] one after another as one float vector, for <see cref="ComputeDevice.AddBias"/>.</summary>
    private static DeviceTensor Bias(ComputeDevice device, ModelCheckpoint checkpoint, params (string Name, int Rows)[] parts)
    {
        var values = parts.SelectMany(p => checkpoint.Read(p.Name, p.Rows).ToFloats()).ToArray();
        var bias = device.Allocate(values.Length);
        device.Upload(values, bias);
        return bias;
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

    /// <summary>Shape plus a hash of the first row of the embedding (the first of <paramref name="embedding"/>'s
    /// rows) and the final norm, as floats, so f32/f16/bf16 copies of one model share a fingerprint only when
    /// they agree to 16-bit precision.</summary>
    private static string ComputeFingerprint(ModelCheckpoint checkpoint, TensorData embedding)
    {
        var c = checkpoint.Config;
        var row = new float[c.Dim];
        TensorData.Widen(embedding.Type, embedding.Bytes[..checked((int)embedding.Type.ByteCount(c.Dim))], row);
        var norm = checkpoint.Read(N.FinalNorm, c.Dim).ToFloats();
        var sum = 0.0;
        for (var i = 0; i < c.Dim; i++) sum += Math.Round(row[i] * 256) * (i + 1) + Math.Round(norm[i] * 256) * (i + 7);
        return $"llama-d{c.Dim}-h{c.HiddenDim}-l{c.Layers}-q{c.Heads}-kv{c.KvHeads}-v{c.VocabSize}-{(long)sum:x}";
    }

    /// <summary>Rows <paramref name="ids"/> of the LM head as a new [ids.Count, dim] weight in the head's
    /// own element type, or F32 for a quantized head (its dequantized values, exactly) (a draft
    /// vocabulary's head); the device refuses ids outside the vocabulary.</summary>
    public DeviceWeight GatherHeadRows(ComputeDevice device, int[] ids)
    {
        var dim = LmHead.Cols;
        var values = new float[ids.Length * dim];
        using (var rows = device.Allocate(ids.Length * dim))
        {
            device.Embed(ids, LmHead, rows);
            device.Download(rows, values);
        }
        var type = LmHead.Type.IsQuantized() ? ElementType.F32 : LmHead.Type;
        var bytes = type switch // exact: the values were widened from this type
        {
            ElementType.F32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
            ElementType.F16 => MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
            ElementType.BF16 => MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
            _ => throw new NotSupportedException($"a draft vocabulary cannot gather rows of a {type} LM head"),
        };
        return device.UploadWeight(type, bytes, ids.Length, dim);
    }

    /// <summary>Frees every weight on the device.</summary>
    public void Dispose()
    {
        foreach (var weight in _owned) weight.Dispose();
        foreach (var bias in _biases) bias.Dispose();
        _owned.Clear();
    }
}
