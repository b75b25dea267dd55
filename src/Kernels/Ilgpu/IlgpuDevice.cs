using System.Reflection;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// A <see cref="ComputeDevice"/> over one ILGPU accelerator: <c>cuda</c>, <c>opencl</c> or
/// <c>ilgpu-cpu</c> (ILGPU's CPU emulator, for testing kernels only). Tensors are views of float
/// buffers; F16/BF16 weights stay 16-bit (ushort buffers) and are widened inside the kernels; block-quantized
/// weights stay quantized (in the buffers their type chooses, <see cref="IBlockStorage{TSelf}"/>) and are
/// dequantized inside the kernels (<see cref="IBlockRows"/>).
/// Every kernel is compiled once, on first use, and cached. All work is queued on the accelerator's
/// default stream, so calls are ordered; <see cref="Download"/> and <see cref="ArgMax"/> synchronise.
/// Create instances through <see cref="Devices.Create"/>.
/// </summary>
public sealed partial class IlgpuDevice : ComputeDevice
{
    private readonly Context _context;
    private readonly Accelerator _accelerator;
    private readonly GroupWidths _groups;
    private readonly WeightKernels<F32Weights> _f32;
    private readonly WeightKernels<F16Weights> _f16;
    private readonly WeightKernels<BF16Weights> _bf16;
    private readonly Dictionary<ElementType, IBlockKernels> _blocks;

    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, float>? _rope;
    private Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, int, int, int, float>? _attention;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, int, int, int>? _splitQkv;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, int>? _swiGlu;
    private Action<Index1D, ArrayView<float>, ArrayView<float>>? _add;
    private Action<Index1D, ArrayView<float>, ArrayView<float>, int>? _addBias;
    private Action<KernelConfig, ArrayView<float>, int, float>? _softmax;
    private Action<KernelConfig, ArrayView<float>, int, ArrayView<int>>? _argMax;

    // Small per-call transfers use preallocated buffers that only grow.
    private MemoryBuffer1D<int, Stride1D.Dense> _tokens;
    private MemoryBuffer1D<int, Stride1D.Dense> _rowSlots, _rowPositions; // the last BatchRows copied, see Rows
    private (BatchRows? Rows, long Version) _rowsCopied;
    private MemoryBuffer1D<int, Stride1D.Dense> _argMaxResult;
    private int[] _hostArgMax = new int[128];

    /// <param name="kind">the device name it was created as: ilgpu-cpu, cuda or opencl.</param>
    /// <param name="context">the ILGPU context; the device owns and disposes it.</param>
    /// <param name="accelerator">the accelerator the kernels run on; the device owns and disposes it.</param>
    /// <param name="groupWidth">Threads per group for every explicitly grouped kernel instead of the
    /// accelerator's widths (<see cref="GroupWidths.For"/>); tests use it to cover wide groups on OpenCL.</param>
    internal IlgpuDevice(string kind, Context context, Accelerator accelerator, int? groupWidth = null)
    {
        Kind = kind;
        _context = context;
        _accelerator = accelerator;
        _groups = GroupWidths.For(accelerator, groupWidth);
        _f32 = new WeightKernels<F32Weights>(this);
        _f16 = new WeightKernels<F16Weights>(this);
        _bf16 = new WeightKernels<BF16Weights>(this);
        _blocks = new()
        {
            [ElementType.Q8_0] = new BlockKernels<ScaleAndWords<Q8_0Layout>>(this),
            [ElementType.Q4_0] = new BlockKernels<ScaleAndWords<Q4_0Layout>>(this),
            [ElementType.Q4_1] = new BlockKernels<BlockWords<Q4_1Layout>>(this),
            [ElementType.Q5_0] = new BlockKernels<ScaleAndWords<Q5_0Layout>>(this),
            [ElementType.Q5_1] = new BlockKernels<BlockWords<Q5_1Layout>>(this),
            [ElementType.Q2_K] = new BlockKernels<BlockWords<Q2_KLayout>>(this),
            [ElementType.Q3_K] = new BlockKernels<ScaleAndWords<Q3_KLayout>>(this),
            [ElementType.Q4_K] = new BlockKernels<BlockWords<Q4_KLayout>>(this),
            [ElementType.Q5_K] = new BlockKernels<BlockWords<Q5_KLayout>>(this),
            [ElementType.Q6_K] = new BlockKernels<ScaleAndWords<Q6_KLayout>>(this),
        };
        _tokens = accelerator.Allocate1D<int>(64);
        _rowSlots = accelerator.Allocate1D<int>(64);
        _rowPositions = accelerator.Allocate1D<int>(64);
        _argMaxResult = accelerator.Allocate1D<int>(128);
    }

    /// <inheritdoc/>
    public override string Kind { get; }

    /// <inheritdoc/>
    public override string Name => $"{_accelerator.Name} ({_accelerator.AcceleratorType}, group size {_groups})";

    /// <summary>Threads per group of the explicitly grouped kernels, per family (reductions run over this many partials).</summary>
    internal GroupWidths Groups => _groups;

    /// <summary>The accelerator's memory; the CPU emulator's is the host memory the process may use.</summary>
    public override long MemoryBytes => Math.Min(_accelerator.MemorySize, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);

    /// <inheritdoc/>
    public override DeviceTensor Allocate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        var buffer = _accelerator.Allocate1D<float>(Math.Max(1, length));
        buffer.MemSetToZero();
        AllocatedBytes += buffer.LengthInBytes;
        return new IlgpuTensor(this, buffer, buffer.View.SubView(0, length));
    }

    /// <inheritdoc/>
    public override DeviceWeight UploadWeight(ElementType type, ReadOnlySpan<byte> data, int rows, int cols)
    {
        var weight = new IlgpuWeight(this, type, data, rows, cols);
        AllocatedBytes += weight.Bytes;
        return weight;
    }

    /// <inheritdoc/>
    public override void Upload(ReadOnlySpan<float> source, DeviceTensor destination) =>
        View(destination).SubView(0, source.Length).CopyFromCPU(source);

    /// <inheritdoc/>
    public override void Download(DeviceTensor source, Span<float> destination)
    {
        View(source).SubView(0, destination.Length).CopyToCPU(destination);
        _accelerator.Synchronize();
    }

    /// <inheritdoc/>
    public override void Copy(DeviceTensor source, DeviceTensor destination)
    {
        var from = View(source);
        from.CopyTo(View(destination).SubView(0, from.Length));
    }

    /// <inheritdoc/>
    public override void Embed(ReadOnlySpan<int> tokens, DeviceWeight table, DeviceTensor output)
    {
        var weight = Weight(table);
        foreach (var token in tokens)
            if ((uint)token >= (uint)weight.Rows)
                throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary of {weight.Rows}");
        if (tokens.IsEmpty) return;
        EnsureCapacity(ref _tokens, tokens.Length);
        var ids = _tokens.View.BaseView.SubView(0, tokens.Length);
        ids.CopyFromCPU(tokens);
        var length = tokens.Length * weight.Cols;
        var o = View(output, length, nameof(output));
        switch (weight.Type)
        {
            case ElementType.F32: _f32.Embed(length, ids, new F32Weights(weight.Floats), o, weight.Cols); break;
            case ElementType.F16: _f16.Embed(length, ids, new F16Weights(weight.Halves), o, weight.Cols); break;
            case ElementType.BF16: _bf16.Embed(length, ids, new BF16Weights(weight.Halves), o, weight.Cols); break;
            case var _ when weight.Type.IsQuantized(): Blocks(weight.Type).Embed(length, ids, weight.Blocks, o, weight.Cols); break;
            default: throw ElementTypes.Unsupported(weight.Type, "the embedding kernel");
        }
    }

    /// <inheritdoc/>
    public override void RmsNorm(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, float eps)
    {
        var w = Weight(weight);
        var dim = w.Cols;
        if (rows <= 0) return;
        var x = View(input, rows * dim, nameof(input));
        var y = View(output, rows * dim, nameof(output));
        var config = new KernelConfig(rows, _groups.Rows);
        switch (w.Type)
        {
            case ElementType.F32: _f32.RmsNorm(config, x, new F32Weights(w.Floats), y, dim, eps); break;
            case ElementType.F16: _f16.RmsNorm(config, x, new F16Weights(w.Halves), y, dim, eps); break;
            case ElementType.BF16: _bf16.RmsNorm(config, x, new BF16Weights(w.Halves), y, dim, eps); break;
            default: throw QuantizedNorm(w.Type);
        }
    }

    /// <inheritdoc/>
    public override void MatMul(DeviceTensor input, DeviceWeight weight, DeviceTensor output, int rows, bool accumulate = false, int outputStride = 0)
    {
        var w = Weight(weight);
        var stride = OutputStride(w, outputStride);
        if (rows <= 0) return;
        var x = View(input, rows * w.Cols, nameof(input));
        var y = View(output, (rows - 1L) * stride + w.Rows, nameof(output));
        var config = new KernelConfig(w.Rows, _groups.MatMul);
        var add = accumulate ? 1 : 0;
        switch (w.Type)
        {
            case ElementType.F32: _f32.MatMul(config, x, new F32Weights(w.Floats), y, rows, w.Cols, stride, add); break;
            case ElementType.F16: _f16.MatMul(config, x, new F16Weights(w.Halves), y, rows, w.Cols, stride, add); break;
            case ElementType.BF16: _bf16.MatMul(config, x, new BF16Weights(w.Halves), y, rows, w.Cols, stride, add); break;
            case var _ when w.Type.IsQuantized(): Blocks(w.Type).MatMul(config, x, w.Blocks, y, rows, w.Cols, stride, add); break;
            default: throw ElementTypes.Unsupported(w.Type, "the matmul kernel");
        }
    }

    /// <inheritdoc/>
    public override void AddBias(DeviceTensor x, DeviceTensor bias, int rows)
    {
        if (rows <= 0) return;
        var width = bias.Length;
        _addBias ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, int>>(BiasKernel.AddBias));
        _addBias(rows * width, View(x, (long)rows * width, nameof(x)), View(bias), width);
    }

    /// <inheritdoc/>
    public override void Rope(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table) => Rotate(x, rows, heads, startPos, table, 1f);

    /// <summary>Rotates by +angle (forward) or -angle (<paramref name="sinSign"/> = -1: the adjoint, for backward).</summary>
    private void Rotate(DeviceTensor x, int rows, int heads, int startPos, RotaryTable table, float sinSign)
    {
        if (rows <= 0) return;
        CheckPositions(startPos, rows, table);
        var headDim = table.HeadDim;
        var pairs = rows * heads * (headDim / 2);
        _rope ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, int, float>>(RopeKernel.Rope));
        _rope(pairs, View(x, rows * heads * headDim, nameof(x)), View(table.Cos), View(table.Sin), heads, headDim, startPos, sinSign);
    }

    /// <inheritdoc/>
    public override void SplitQkv(DeviceTensor qkv, DeviceTensor query, DeviceTensor keyCache, DeviceTensor valueCache,
        BatchRows rows, int heads, int kvHeads, int slotPositions, RotaryTable table)
    {
        if (rows.Count <= 0) return;
        var headDim = table.HeadDim;
        var (dim, kvDim) = (heads * headDim, kvHeads * headDim);
        CheckRows(rows, slotPositions, Math.Min(keyCache.Length, valueCache.Length), kvDim, table);
        var (slots, positions) = Rows(rows);
        _splitQkv ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, int, int, int>>(RopeKernel.SplitQkv));
        _splitQkv(rows.Count * ((heads + kvHeads) * (headDim / 2) + kvDim), View(qkv, rows.Count * (dim + 2 * kvDim), nameof(qkv)),
            View(query, rows.Count * dim, nameof(query)), View(keyCache), View(valueCache),
            View(table.Cos), View(table.Sin), slots, positions, slotPositions, heads, kvHeads, headDim);
    }

    /// <summary>The device copies of a pass's slots and positions (a view's rows of them), copied once
    /// per version of the rows: the layers of a pass share one copy.</summary>
    private (ArrayView<int> Slots, ArrayView<int> Positions) Rows(BatchRows rows)
    {
        var root = rows.Root;
        if (!ReferenceEquals(_rowsCopied.Rows, root) || _rowsCopied.Version != root.Version)
        {
            EnsureCapacity(ref _rowSlots, root.Count);
            EnsureCapacity(ref _rowPositions, root.Count);
            _rowSlots.View.BaseView.SubView(0, root.Count).CopyFromCPU(root.AllSlots);
            _rowPositions.View.BaseView.SubView(0, root.Count).CopyFromCPU(root.AllPositions);
            _rowsCopied = (root, root.Version);
        }
        return (_rowSlots.View.BaseView.SubView(rows.Offset, rows.Count), _rowPositions.View.BaseView.SubView(rows.Offset, rows.Count));
    }

    private static void CheckHeadGroups(int heads, int kvHeads)
    {
        if (kvHeads <= 0 || heads % kvHeads != 0)
            throw new ArgumentException($"{heads} query heads are not a multiple of {kvHeads} key/value heads", nameof(kvHeads));
    }

    private static void CheckPositions(int startPos, int rows, RotaryTable table)
    {
        if (startPos < 0 || startPos + rows > table.Positions)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions {startPos}..{startPos + rows - 1} are outside the rotary table of {table.Positions} positions");
    }

    /// <inheritdoc/>
    public override void Attention(DeviceTensor q, DeviceTensor keyCache, DeviceTensor valueCache, DeviceTensor output,
        BatchRows rows, int heads, int kvHeads, int headDim, int slotPositions)
    {
        if (rows.Count <= 0) return;
        if (headDim > KernelLimits.MaxHeadDim)
            throw new ArgumentOutOfRangeException(nameof(headDim), $"head dimension {headDim} exceeds the attention kernel's limit of {KernelLimits.MaxHeadDim}");
        CheckHeadGroups(heads, kvHeads);
        CheckRows(rows, slotPositions, Math.Min(keyCache.Length, valueCache.Length), kvHeads * headDim);
        var (slots, positions) = Rows(rows);
        _attention ??= _accelerator.LoadStreamKernel(Checked<Action<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>, int, int, int, int, float>>(AttentionKernel.Attention));
        _attention(new KernelConfig(rows.Count * heads, _groups.Attention),
            View(q, rows.Count * heads * headDim, nameof(q)), View(keyCache), View(valueCache),
            View(output, rows.Count * heads * headDim, nameof(output)), slots, positions, slotPositions, heads, kvHeads, headDim, 1f / MathF.Sqrt(headDim));
    }

    /// <inheritdoc/>
    public override void SwiGlu(DeviceTensor gateUp, DeviceTensor output, int rows, int hiddenDim)
    {
        if (rows <= 0) return;
        _swiGlu ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, ArrayView<float>, int>>(SwiGluKernel.SwiGlu));
        _swiGlu(rows * hiddenDim, View(gateUp, 2L * rows * hiddenDim, nameof(gateUp)), View(output, (long)rows * hiddenDim, nameof(output)), hiddenDim);
    }

    /// <inheritdoc/>
    public override void Add(DeviceTensor target, DeviceTensor addend, int length)
    {
        if (length <= 0) return;
        _add ??= _accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<float>, ArrayView<float>>>(ResidualAddKernel.Add));
        _add(length, View(target, length, nameof(target)), View(addend, length, nameof(addend)));
    }

    /// <inheritdoc/>
    public override void Softmax(DeviceTensor logits, int rows, int cols, float temperature)
    {
        if (rows <= 0) return;
        _softmax ??= _accelerator.LoadStreamKernel(Checked<Action<ArrayView<float>, int, float>>(SoftmaxKernel.Softmax));
        _softmax(new KernelConfig(rows, _groups.Rows), View(logits, rows * cols, nameof(logits)), cols, temperature);
    }

    /// <inheritdoc/>
    public override void ArgMax(DeviceTensor logits, int rows, int cols, Span<TopToken> result)
    {
        if (rows <= 0) return;
        ArgumentOutOfRangeException.ThrowIfLessThan(result.Length, rows, nameof(result));
        EnsureCapacity(ref _argMaxResult, 2 * rows);
        if (_hostArgMax.Length < 2 * rows) _hostArgMax = new int[_argMaxResult.Length];
        _argMax ??= _accelerator.LoadStreamKernel(Checked<Action<ArrayView<float>, int, ArrayView<int>>>(ArgMaxKernel.ArgMax));
        var packed = _argMaxResult.View.BaseView.SubView(0, 2 * rows);
        _argMax(new KernelConfig(rows, _groups.Rows), View(logits, rows * cols, nameof(logits)), cols, packed);
        packed.CopyToCPU(_hostArgMax.AsSpan(0, 2 * rows)); // one transfer: (id, probability bits) per row
        _accelerator.Synchronize();
        for (var r = 0; r < rows; r++) result[r] = new TopToken(_hostArgMax[2 * r], BitConverter.Int32BitsToSingle(_hostArgMax[2 * r + 1]));
    }

    /// <inheritdoc/>
    public override void Synchronize() => _accelerator.Synchronize();

    /// <inheritdoc/>
    public override void Dispose()
    {
        DisposeTraining();
        _tokens.Dispose();
        _rowSlots.Dispose();
        _rowPositions.Dispose();
        _argMaxResult.Dispose();
        _accelerator.Dispose();
        _context.Dispose();
    }

    /// <summary>Refuses to load a method not marked <see cref="IlgpuKernelAttribute"/> (the CUDA
    /// compile test covers exactly the marked ones).</summary>
    private static TKernel Checked<TKernel>(TKernel kernel) where TKernel : Delegate =>
        kernel.Method.GetCustomAttribute<IlgpuKernelAttribute>() is null
            ? throw new InvalidOperationException($"{kernel.Method.DeclaringType?.Name}.{kernel.Method.Name} is not marked [IlgpuKernel]")
            : kernel;

    private void EnsureCapacity<T>(ref MemoryBuffer1D<T, Stride1D.Dense> buffer, int length) where T : unmanaged
    {
        if (buffer.Length >= length) return;
        buffer.Dispose();
        buffer = _accelerator.Allocate1D<T>(Math.Max(length, 2 * buffer.Length));
    }

    private ArrayView<float> View(DeviceTensor tensor) =>
        tensor is IlgpuTensor t && t.Owner == this
            ? t.View
            : throw new ArgumentException($"tensor belongs to another device ({tensor.GetType().Name}), not to {Kind}");

    private ArrayView<float> View(DeviceTensor tensor, long length, string what)
    {
        var view = View(tensor);
        if (view.Length < length) throw new ArgumentException($"{what} holds {view.Length} floats, the operation needs {length}", what);
        return view.SubView(0, length);
    }

    private IlgpuWeight Weight(DeviceWeight weight) =>
        weight is IlgpuWeight w && w.Owner == this
            ? w
            : throw new ArgumentException($"weight belongs to another device ({weight.GetType().Name}), not to {Kind}");

    /// <summary>The storage and kernels of a block-quantized type; adding a type is a reader struct and a line of <see cref="_blocks"/>.</summary>
    private IBlockKernels Blocks(ElementType type) =>
        _blocks.TryGetValue(type, out var kernels) ? kernels : throw ElementTypes.Unsupported(type, "the ILGPU kernels");

    /// <summary>A block type's upload and kernels, over its reader boxed in the weight (<see cref="IlgpuWeight.Blocks"/>).</summary>
    private interface IBlockKernels
    {
        object Upload(ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers);

        void Embed(Index1D length, ArrayView<int> tokens, object rows, ArrayView<float> output, int dim);

        void MatMul(KernelConfig config, ArrayView<float> input, object rows, ArrayView<float> output, int count, int inDim, int outputStride, int accumulate);
    }

    /// <summary>The kernels that read block-quantized weights: value by value (the embedding lookup) and
    /// the block matmul, compiled on first use.</summary>
    private sealed class BlockKernels<TBlocks>(IlgpuDevice device) : IBlockKernels where TBlocks : struct, IBlockRows, IBlockStorage<TBlocks>
    {
        private readonly WeightKernels<TBlocks> _values = new(device);
        private Action<KernelConfig, ArrayView<float>, TBlocks, ArrayView<float>, int, int, int, int>? _matMul;

        public object Upload(ReadOnlySpan<byte> blocks, ICollection<MemoryBuffer> buffers) => TBlocks.Upload(device._accelerator, blocks, buffers);

        public void Embed(Index1D length, ArrayView<int> tokens, object rows, ArrayView<float> output, int dim) =>
            _values.Embed(length, tokens, (TBlocks)rows, output, dim);

        public void MatMul(KernelConfig config, ArrayView<float> input, object rows, ArrayView<float> output, int count, int inDim, int outputStride, int accumulate) =>
            (_matMul ??= device._accelerator.LoadStreamKernel(Checked<Action<ArrayView<float>, TBlocks, ArrayView<float>, int, int, int, int>>(MatMulKernel.MatMulBlocks<TBlocks>)))
                (config, input, (TBlocks)rows, output, count, inDim, outputStride, accumulate);
    }

    /// <summary>The kernels that read weights, compiled on first use for one weight reader type.</summary>
    private sealed class WeightKernels<TWeights>(IlgpuDevice device) where TWeights : struct, IWeightRows
    {
        private Action<Index1D, ArrayView<int>, TWeights, ArrayView<float>, int>? _embed;
        private Action<KernelConfig, ArrayView<float>, TWeights, ArrayView<float>, int, float>? _rmsNorm;
        private Action<KernelConfig, ArrayView<float>, TWeights, ArrayView<float>, int, int, int, int>? _matMul;

        public Action<Index1D, ArrayView<int>, TWeights, ArrayView<float>, int> Embed =>
            _embed ??= device._accelerator.LoadAutoGroupedStreamKernel(Checked<Action<Index1D, ArrayView<int>, TWeights, ArrayView<float>, int>>(EmbeddingKernel.Embed<TWeights>));

        public Action<KernelConfig, ArrayView<float>, TWeights, ArrayView<float>, int, float> RmsNorm =>
            _rmsNorm ??= device._accelerator.LoadStreamKernel(Checked<Action<ArrayView<float>, TWeights, ArrayView<float>, int, float>>(RmsNormKernel.RmsNorm<TWeights>));

        public Action<KernelConfig, ArrayView<float>, TWeights, ArrayView<float>, int, int, int, int> MatMul =>
            _matMul ??= device._accelerator.LoadStreamKernel(Checked<Action<ArrayView<float>, TWeights, ArrayView<float>, int, int, int, int>>(MatMulKernel.MatMul<TWeights>));
    }

    private sealed class IlgpuTensor(IlgpuDevice owner, MemoryBuffer1D<float, Stride1D.Dense>? buffer, ArrayView<float> view) : DeviceTensor
    {
        private MemoryBuffer1D<float, Stride1D.Dense>? _buffer = buffer;

        public IlgpuDevice Owner => owner;
        public ArrayView<float> View => view;
        /// <inheritdoc/>
        public override int Length => (int)view.Length;

        /// <inheritdoc/>
        public override DeviceTensor Slice(int offset, int length)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(offset);
            ArgumentOutOfRangeException.ThrowIfNegative(length);
            ArgumentOutOfRangeException.ThrowIfGreaterThan((long)offset + length, view.Length);
            return new IlgpuTensor(owner, null, view.SubView(offset, length));
        }

        /// <inheritdoc/>
        public override void Dispose()
        {
            if (_buffer is null) return;
            owner.AllocatedBytes -= _buffer.LengthInBytes;
            _buffer.Dispose();
            _buffer = null;
        }
    }

    private sealed class IlgpuWeight : DeviceWeight
    {
        private readonly List<MemoryBuffer> _buffers = [];
        private readonly ArrayView<float> _floats;
        private readonly ArrayView<ushort> _halves;
        private readonly object? _blocks;
        private bool _disposed;

        public IlgpuWeight(IlgpuDevice owner, ElementType type, ReadOnlySpan<byte> data, int rows, int cols) : base(type, rows, cols)
        {
            if (data.Length != Bytes) throw new ArgumentException($"{data.Length} bytes for a {type} weight [{rows}, {cols}]", nameof(data));
            Owner = owner;
            var count = (long)rows * cols;
            switch (type)
            {
                case ElementType.F32:
                    var floats = owner._accelerator.Allocate1D<float>(Math.Max(1, count));
                    _buffers.Add(floats);
                    floats.View.BaseView.SubView(0, count).CopyFromCPU(MemoryMarshal.Cast<byte, float>(data));
                    _floats = floats.View;
                    break;
                case ElementType.F16 or ElementType.BF16:
                    var halves = owner._accelerator.Allocate1D<ushort>(Math.Max(1, count));
                    _buffers.Add(halves);
                    halves.View.BaseView.SubView(0, count).CopyFromCPU(MemoryMarshal.Cast<byte, ushort>(data));
                    _halves = halves.View;
                    break;
                case var _ when type.IsQuantized():
                    _blocks = owner.Blocks(type).Upload(data, _buffers);
                    break;
                default:
                    throw ElementTypes.Unsupported(type, "the ILGPU devices' weights");
            }
        }

        public IlgpuDevice Owner { get; }
        public ArrayView<float> Floats => _disposed ? throw new ObjectDisposedException(nameof(IlgpuWeight)) : _floats;
        public ArrayView<ushort> Halves => _disposed ? throw new ObjectDisposedException(nameof(IlgpuWeight)) : _halves;

        /// <summary>A block-quantized weight's reader (the type's <see cref="IBlockRows"/> struct, boxed).</summary>
        public object Blocks => _disposed ? throw new ObjectDisposedException(nameof(IlgpuWeight)) : _blocks!;

        /// <inheritdoc/>
        public override void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            Owner.AllocatedBytes -= Bytes;
            foreach (var buffer in _buffers) buffer.Dispose();
        }
    }
}
