namespace Kangaroo.Native.Kernels;

/// <summary>Element type of weights on a device. 16-bit weights stay 16-bit and are widened in the kernels.</summary>
public enum WeightType { F32, F16, BF16 }

/// <summary>A float32 buffer on a device, or a view into one (<see cref="Slice"/>).</summary>
public abstract class DeviceTensor : IDisposable
{
    public abstract int Length { get; }

    /// <summary>A view of <paramref name="length"/> elements from <paramref name="offset"/>; it owns no memory.</summary>
    public abstract DeviceTensor Slice(int offset, int length);

    public abstract void Dispose();
}

/// <summary>A weight matrix [Rows, Cols] (row-major, like a PyTorch Linear weight [out, in]) or a
/// vector (Rows = 1) on a device, in its stored element type.</summary>
public abstract class DeviceWeight(WeightType type, int rows, int cols) : IDisposable
{
    public WeightType Type { get; } = type;
    public int Rows { get; } = rows;
    public int Cols { get; } = cols;
    public long Bytes => (long)Rows * Cols * (Type == WeightType.F32 ? 4 : 2);
    public abstract void Dispose();
}

/// <summary>The most likely token of a row of logits and its softmax probability.</summary>
public readonly record struct TopToken(int Id, float Probability);

/// <summary>
/// The operations of a Llama forward pass on one device. Every operation works on a block of
/// <c>rows</c> positions at once, and computes each row exactly as it would compute that row alone:
/// the same reductions in the same order, so a batched pass gives bit-identical results to one-row
/// passes (speculative verification relies on this to stay lossless).
/// Calls are asynchronous on GPU backends; <see cref="Download"/> and <see cref="ArgMax"/> synchronise.
/// </summary>
public abstract class ComputeDevice : IDisposable
{
    /// <summary>The device kind: <c>cpu</c>, <c>ilgpu-cpu</c>, <c>cuda</c> or <c>opencl</c>.</summary>
    public abstract string Kind { get; }

    /// <summary>A human-readable description (accelerator name).</summary>
    public abstract string Name { get; }

    /// <summary>Bytes currently held in weights and buffers allocated through this device.</summary>
    public long AllocatedBytes { get; protected set; }

    /// <summary>A zero-filled float buffer.</summary>
    public abstract DeviceTensor Allocate(int length);

    /// <summary>Uploads a weight [rows, cols] given as little-endian bytes of <paramref name="type"/>.</summary>
    public abstract DeviceWeight UploadWeight(WeightType type, ReadOnlySpan<byte> data, int rows, int cols);

    public abstract void Upload(ReadOnlySpan<float> source, DeviceTensor destination);

    public abstract void Download(DeviceTensor source, Span<float> destination);

    /// <summary>destination[0..source.Length) = source.</summary>
    public abstract void Copy(DeviceTensor source, DeviceTensor destination);

    /// <summary>output[r, :] = table[tokens[r], :] widened to float.</summary>
    public abstract void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output);

    /// <summary>output[r, i] = input[r, i] / sqrt(mean_i(input[r, :]^2) + eps) * weight[i]; dim = weight.Cols.</summary>
    public abstract void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps);

    /// <summary>output[r, o] (+)= sum_i input[r, i] * weight[o, i]; in = weight.Cols, out = weight.Rows.</summary>
    public abstract void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false);

    /// <summary>Rotary embedding in the Hugging Face convention on x[r, heads * headDim] at position
    /// startPos + r: each head's pair (i, i + headDim/2) is rotated by angle pos * theta^(-2i/headDim),
    /// whose cosine and sine are read from <paramref name="table"/>.</summary>
    public abstract void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table);

    /// <summary>Causal grouped-query attention. Query row r (position startPos + r) attends to cache
    /// positions 0..startPos + r; query head h reads key/value head h / (heads / kvHeads).
    /// q and output are [rows, heads * headDim]; keys and values are a layer's cache [positions, kvHeads * headDim].</summary>
    public abstract void Attention(DeviceTensor q, DeviceTensor keys, DeviceTensor values, DeviceTensor output,
        int rows, int startPos, int heads, int kvHeads, int headDim);

    /// <summary>gate[i] = silu(gate[i]) * up[i] for i in [0, length).</summary>
    public abstract void SwiGlu(DeviceTensor gate, DeviceTensor up, int length);

    /// <summary>target[i] += addend[i] for i in [0, length).</summary>
    public abstract void Add(DeviceTensor target, DeviceTensor addend, int length);

    /// <summary>In place: logits[r, :] = softmax(logits[r, :] / temperature).</summary>
    public abstract void Softmax(DeviceTensor logits, int rows, int cols, float temperature);

    /// <summary>For each row of logits [rows, cols]: the arg max (lowest index on ties) and its softmax
    /// probability. Synchronises.</summary>
    public abstract void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result);

    /// <summary>Waits until all queued work is done.</summary>
    public abstract void Synchronize();

    public abstract void Dispose();
}
