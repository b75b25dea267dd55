using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels;

/// <summary>A float32 buffer on a device, or a view into one (<see cref="Slice"/>).</summary>
public abstract class DeviceTensor : IDisposable
{
    /// <summary>Elements (float32 values) in the buffer or view.</summary>
    public abstract int Length { get; }

    /// <summary>A view of <paramref name="length"/> elements from <paramref name="offset"/>; it owns no memory.</summary>
    public abstract DeviceTensor Slice(int offset, int length);

    /// <summary>Frees the buffer's device memory; a view (<see cref="Slice"/>) owns none.</summary>
    public abstract void Dispose();
}

/// <summary>A weight matrix [Rows, Cols] (row-major, like a PyTorch Linear weight [out, in]) or a
/// vector (Rows = 1) on a device, in its stored element type: 16-bit weights are widened and quantized
/// blocks dequantized inside the kernels. A quantized weight's rows are whole blocks.</summary>
public abstract class DeviceWeight(ElementType type, int rows, int cols) : IDisposable
{
    /// <summary>The stored element type.</summary>
    public ElementType Type { get; } = type;

    /// <summary>Rows: output features of a matrix, 1 for a vector.</summary>
    public int Rows { get; } = rows;

    /// <summary>Values per row: input features of a matrix.</summary>
    public int Cols { get; } = cols;

    /// <summary>Bytes of the weight in its stored type.</summary>
    public long Bytes { get; } = rows * type.RowBytes(cols);

    /// <summary>Frees the weight's device memory.</summary>
    public abstract void Dispose();
}

/// <summary>Rows of a weight in host memory, for <see cref="ComputeDevice.UploadWeight(ElementType, ReadOnlySpan{WeightRows}, int)"/>:
/// <see cref="Rows"/> rows of the weight's row bytes each, from <see cref="Address"/>. With a <see cref="Lease"/>,
/// the memory is someone else's (a memory-mapped model file) and stays valid until the lease is disposed, so a
/// device may read the rows in place; without one, the rows are valid only during the call and are copied.</summary>
public readonly record struct WeightRows(nint Address, int Rows, IDisposable? Lease = null);

/// <summary>The most likely token of a row of logits and its softmax probability.</summary>
public readonly record struct TopToken(int Id, float Probability);

/// <summary>Settings of one AdamW update; <see cref="Step"/> counts from 1.</summary>
public readonly record struct AdamWStep(float LearningRate, float Beta1, float Beta2, float Epsilon, float WeightDecay, int Step)
{
    /// <summary>1 - beta1^step.</summary>
    public float BiasCorrection1 => (float)(1 - Math.Pow(Beta1, Step));

    /// <summary>1 - beta2^step.</summary>
    public float BiasCorrection2 => (float)(1 - Math.Pow(Beta2, Step));
}

/// <summary>
/// The operations of a Llama forward pass on one device. Every operation works on a block of
/// <c>rows</c> positions at once, and computes each row exactly as it would compute that row alone:
/// the same reductions in the same order, so a batched pass gives bit-identical results to one-row
/// passes (speculative verification relies on this to stay lossless).
/// The backward operations below train a Kangaroo adapter (docs/kangaroo.md).
/// Calls are asynchronous on GPU backends; <see cref="Download"/> and <see cref="ArgMax"/> synchronise.
/// </summary>
public abstract class ComputeDevice : IDisposable
{
    /// <summary>The device kind: <c>cpu</c>, <c>ilgpu-cpu</c>, <c>cuda</c> or <c>opencl</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>A human-readable description (accelerator name).</summary>
    public abstract string Name { get; }

    /// <summary>Bytes currently held in weights and buffers allocated through this device.</summary>
    public long AllocatedBytes { get; protected internal set; }

    /// <summary>Bytes of weights the device reads in place from memory it does not own (a memory-mapped
    /// model file, <see cref="WeightRows.Lease"/>); <see cref="AllocatedBytes"/> does not count them.</summary>
    public long BorrowedBytes { get; protected internal set; }

    /// <summary>Bytes of memory the device has: its own memory, or for the managed device the memory
    /// the process may use. Sizes the default context of a model.</summary>
    public abstract long MemoryBytes { get; }

    /// <summary>A zero-filled float buffer.</summary>
    public abstract DeviceTensor Allocate(int length);

    /// <summary>Uploads a weight [rows, cols] given as little-endian bytes of <paramref name="type"/>.</summary>
    public abstract DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<byte> data, int rows, int cols);

    /// <summary>Uploads a weight [sum of the parts' rows, cols] whose parts lie in host memory, one under another
    /// (cols = the values of each row; a vector is one row). The device takes over every part's
    /// <see cref="WeightRows.Lease"/>, also when it throws: by default it copies the parts as
    /// <see cref="UploadWeight(ElementType, ReadOnlySpan{byte}, int, int)"/> does and disposes the leases at once;
    /// a device that reads host memory keeps leased parts in place and disposes their leases with the weight.</summary>
    public virtual unsafe DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<WeightRows> parts, int cols)
    {
        try
        {
            var rowBytes = type.RowBytes(cols);
            if (parts.Length == 1)
                return UploadWeight(type, new ReadOnlySpan<byte>((void*)parts[0].Address, checked((int)(parts[0].Rows * rowBytes))), parts[0].Rows, cols);
            var rows = 0;
            foreach (var part in parts) rows = checked(rows + part.Rows);
            var stacked = new byte[checked(rows * rowBytes)];
            var offset = 0;
            foreach (var part in parts)
            {
                var bytes = checked((int)(part.Rows * rowBytes));
                new ReadOnlySpan<byte>((void*)part.Address, bytes).CopyTo(stacked.AsSpan(offset));
                offset += bytes;
            }
            return UploadWeight(type, stacked, rows, cols);
        }
        finally
        {
            foreach (var part in parts) part.Lease?.Dispose();
        }
    }

    /// <summary>Copies host values into the first <c>source.Length</c> elements of <paramref name="destination"/>.</summary>
    public abstract void Upload(ReadOnlySpan<float> source, DeviceTensor destination);

    /// <summary>Copies the first <c>destination.Length</c> elements of <paramref name="source"/> to the host, after the queued work that writes them.</summary>
    public abstract void Download(DeviceTensor source, Span<float> destination);

    /// <summary>destination[0..source.Length) = source.</summary>
    public abstract void Copy(DeviceTensor source, DeviceTensor destination);

    /// <summary>output[r, :] = table[tokens[r], :] widened to float; an id outside the table throws
    /// <see cref="ArgumentOutOfRangeException"/> before any work is queued.</summary>
    public abstract void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output);

    /// <summary>output[r, i] = input[r, i] / sqrt(mean_i(input[r, :]^2) + eps) * weight[i]; dim = weight.Cols.</summary>
    public abstract void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps);

    /// <summary>output[r, o] (+)= sum_i input[r, i] * weight[o, i]; in = weight.Cols, out = weight.Rows. Row r of
    /// the output starts at r * <paramref name="outputStride"/> (0: out), so that a weight can fill its columns
    /// of a wider output (the parts of a stack of matrices that keep different element types); the other
    /// columns are left as they are.</summary>
    public abstract void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false, int outputStride = 0);

    /// <summary>The output row stride of a <see cref="MatMul"/>: <paramref name="outputStride"/>, or the
    /// weight's rows for 0; refuses one narrower than the weight's rows.</summary>
    protected static int OutputStride(DeviceWeight weight, int outputStride) => outputStride == 0 ? weight.Rows
        : outputStride >= weight.Rows ? outputStride
        : throw new ArgumentOutOfRangeException(nameof(outputStride), $"output rows of {outputStride} values cannot hold the weight's {weight.Rows} outputs");

    /// <summary>The bias of a Linear layer after its matmul: x[r, c] += bias[c] for r in [0, rows) and c in [0, bias.Length).</summary>
    public abstract void AddBias(DeviceTensor x, DeviceTensor bias, int rows);

    /// <summary>Rotary embedding in the Hugging Face convention on x[r, heads * headDim] at position
    /// startPos + r: each head's pair (i, i + headDim/2) is rotated by angle pos * frequency_i
    /// (theta^(-2i/headDim), possibly scaled), whose cosine and sine are read from <paramref name="table"/>.</summary>
    public abstract void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table);

    /// <summary>The epilogue of a fused QKV projection: row r of <paramref name="qkv"/> is [q | k | v]
    /// (widths heads, kvHeads and kvHeads times headDim) at position rows.Position(r) of the sequence in
    /// cache slot rows.Slot(r). Writes q rotated as <see cref="Rope"/> rotates into query[r], and k
    /// rotated and v into that sequence's position of the layer's caches (<paramref name="keyCache"/>,
    /// <paramref name="valueCache"/>: [slots, slotPositions, kvHeads * headDim]): one launch where two
    /// rotations and two copies would be four.</summary>
    public abstract void SplitQkv(DeviceTensor qkv, DeviceTensor query, DeviceTensor keyCache, DeviceTensor valueCache,
        BatchRows rows, int heads, int kvHeads, int slotPositions, RotaryTable table);

    /// <summary>Causal grouped-query attention. Query row r (position p = rows.Position(r) of the
    /// sequence in slot s = rows.Slot(r)) attends to positions 0..p of slot s of the layer's caches
    /// ([slots, slotPositions, kvHeads * headDim]); query head h reads key/value head h / (heads / kvHeads).
    /// q and output are [rows, heads * headDim]. A row reads only its own sequence, so its result is
    /// the same whatever else the pass holds.</summary>
    public abstract void Attention(DeviceTensor q, DeviceTensor keyCache, DeviceTensor valueCache, DeviceTensor output,
        BatchRows rows, int heads, int kvHeads, int headDim, int slotPositions);

    /// <summary>The epilogue of a fused gate/up projection: row r of <paramref name="gateUp"/> is
    /// [gate | up] (hiddenDim each); output[r, i] = silu(gate[r, i]) * up[r, i].</summary>
    public abstract void SwiGlu(DeviceTensor gateUp, DeviceTensor output, int rows, int hiddenDim);

    /// <summary>target[i] += addend[i] for i in [0, length).</summary>
    public abstract void Add(DeviceTensor target, DeviceTensor addend, int length);

    /// <summary>In place: logits[r, :] = softmax(logits[r, :] / temperature).</summary>
    public abstract void Softmax(DeviceTensor logits, int rows, int cols, float temperature);

    /// <summary>For each row of logits [rows, cols]: the arg max (lowest index on ties) and its softmax
    /// probability. Synchronises.</summary>
    public abstract void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result);

    // ---- Training: the backward operations of the Kangaroo adapter and the optimiser ----
    // Gradients with respect to a row of an input depend only on that row (and, for attention, on the
    // rows it attends to), computed in the same order whatever the number of rows. Weight gradients
    // sum over rows in ascending row order straight into the accumulator, so splitting a block into
    // consecutive calls gives the same bits as one call.

    /// <summary>tensor[i] = value for every element of the tensor (or view).</summary>
    public abstract void Fill(DeviceTensor tensor, float value);

    /// <summary>Overwrites an F32 weight [Rows, Cols] with the first Rows * Cols values of
    /// <paramref name="source"/>: how training publishes updated parameters to the forward operations.</summary>
    public abstract void UpdateWeight(DeviceTensor source, DeviceWeight destination);

    /// <summary>Backward of <see cref="RmsNorm"/>. With s = 1 / sqrt(mean_i x[r, i]^2 + eps) and
    /// c = sum_j weight[j] * dOutput[r, j] * x[r, j]:
    /// dInput[r, i] (+)= s * weight[i] * dOutput[r, i] - s^3 * c / dim * x[r, i] (skipped when
    /// <paramref name="dInput"/> is null), and dWeight[i] += sum_r dOutput[r, i] * x[r, i] * s.</summary>
    public abstract void RmsNormBackward(DeviceTensor input, DeviceWeight weight, DeviceTensor dOutput, DeviceTensor? dInput,
        DeviceTensor dWeight, int rows, float eps, bool accumulate = false);

    /// <summary>Backward of <see cref="MatMul"/> to its input: dInput[r, i] (+)= sum_o dOutput[r, o] * weight[o, i],
    /// summed in ascending o.</summary>
    public abstract void MatMulBackwardInput(DeviceTensor dOutput, DeviceWeight weight, DeviceTensor dInput, int rows, bool accumulate = false);

    /// <summary>Backward of <see cref="MatMul"/> to its weight: dWeight[o, i] += sum_r dOutput[r, o] * input[r, i]
    /// (dWeight is [out, in] like the weight; rows added in ascending order).</summary>
    public abstract void MatMulWeightGradient(DeviceTensor dOutput, DeviceTensor input, DeviceTensor dWeight, int rows, int inDim, int outDim);

    /// <summary>Backward of <see cref="Rope"/>, in place: each pair of the gradient is rotated by minus the angle.</summary>
    public abstract void RopeBackward(DeviceTensor grad, int rows, int heads, int startPos, RotaryTable table);

    /// <summary>Backward of <see cref="Attention"/> (causal, grouped-query). The softmax weights p are
    /// recomputed exactly as the forward computes them; per query row and head, with
    /// dp[t] = dOutput . v[t] and ds[t] = p[t] * (dp[t] - sum_u p[u] dp[u]) * scale:
    /// dQ[r] = sum_t ds[t] k[t] (written); dKeys[t] += ds[t] q[r] and dValues[t] += p[t] dOutput[r]
    /// (accumulated over query rows ascending, then query heads of the group ascending; dKeys and
    /// dValues cover cache positions 0..startPos + rows - 1).</summary>
    public abstract void AttentionBackward(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor dOutput,
        DeviceTensor dQ, DeviceTensor dKeys, DeviceTensor dValues, int rows, int startPos, int heads, int kvHeads, int headDim);

    /// <summary>Soft-label cross-entropy against target distributions p [rows, cols], in place: with
    /// q = softmax(logits[r, :]), logits[r, :] becomes gradScale * (q - p[r, :]), the gradient of
    /// gradScale * loss. rowStats [rows, 3] receives per row: loss = -sum_v p_v log q_v, overlap =
    /// sum_v min(p_v, q_v), and agreement = 1 when arg max q equals arg max p (lowest index on ties), else 0.</summary>
    public abstract void SoftCrossEntropy(DeviceTensor logits, DeviceTensor targets, DeviceTensor rowStats, int rows, int cols, float gradScale);

    /// <summary>Gradient value clipping: tensor[i] = clamp(tensor[i], -limit, limit).</summary>
    public abstract void ClampValues(DeviceTensor tensor, float limit);

    /// <summary>One AdamW step (PyTorch's formulation, decoupled weight decay) over every element:
    /// p -= lr * wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
    /// p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).</summary>
    public abstract void AdamW(DeviceTensor parameters, DeviceTensor gradients, DeviceTensor moment1, DeviceTensor moment2, AdamWStep step);

    /// <summary>The error for a quantized RMSNorm weight: norm gains stay F32 (or 16-bit) when a model's
    /// matrices are quantized.</summary>
    protected static NotSupportedException QuantizedNorm(ElementType type) =>
        new($"RMSNorm weights cannot be {type}: norms stay F32, F16 or BF16 when a model is quantized");

    /// <summary>Refuses rows that would write or read outside the caches or the rotary table: a position
    /// past the slot's positions or the table, a slot past the cache.</summary>
    protected static void CheckRows(BatchRows rows, int slotPositions, long cacheLength, int kvDim, RotaryTable? table = null)
    {
        var slots = cacheLength / ((long)slotPositions * kvDim);
        for (var r = 0; r < rows.Count; r++)
        {
            var (slot, position) = (rows.Slot(r), rows.Position(r));
            if (position < 0 || position >= slotPositions || table is not null && position >= table.Positions)
                throw new ArgumentOutOfRangeException(nameof(rows), $"row {r} is at position {position}, outside the {Math.Min(slotPositions, table?.Positions ?? int.MaxValue)} positions of the cache");
            if (slot < 0 || slot >= slots)
                throw new ArgumentOutOfRangeException(nameof(rows), $"row {r} is in cache slot {slot}, outside the cache's {slots} slots");
        }
    }

    /// <summary>Waits until all queued work is done.</summary>
    public abstract void Synchronize();

    /// <summary>Releases the device (its accelerator and kernels); its tensors and weights must be disposed first.</summary>
    public abstract void Dispose();
}
