using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

public sealed partial class CpuDevice
{
    /// <summary>A weight on the <c>cpu</c> device, in its stored element type: its bytes lie in 64-byte-aligned
    /// unmanaged memory the weight owns and frees on <see cref="Dispose"/>. It hands its rows to the tiles:
    /// 16-bit rows are widened in registers (<see cref="HalfTiles"/>), quantized rows dequantized a block at
    /// a time (<see cref="BlockTiles"/>), or widened into per-thread scratch where a tile needs floats.</summary>
    private sealed unsafe class CpuWeight : DeviceWeight
    {
        private byte* _data;
        private CpuDevice? _owner;
        private readonly long _rowBytes;

        public CpuWeight(CpuDevice owner, ElementType type, ReadOnlySpan<byte> data, int rows, int cols) : base(type, rows, cols)
        {
            if (data.Length != Bytes) throw new ArgumentException($"{data.Length} bytes for a {type} weight [{rows}, {cols}]");
            _owner = owner;
            _rowBytes = type.RowBytes(cols);
            _data = Acquire(data);
        }

        /// <summary>Where a weight's bytes come from: copied into memory the weight owns. This is the one place
        /// that would take borrowed memory instead (a memory-mapped file's weights, used in place).</summary>
        private static byte* Acquire(ReadOnlySpan<byte> data)
        {
            var memory = (byte*)NativeMemory.AlignedAlloc((nuint)Math.Max(1, data.Length), 64);
            data.CopyTo(new Span<byte>(memory, data.Length));
            return memory;
        }

        private byte* Data
        {
            [MethodImpl(MethodImplOptions.AggressiveInlining)]
            get => _data != null ? _data : throw Disposed();
        }

        private static ObjectDisposedException Disposed() => new(nameof(CpuWeight));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private ReadOnlySpan<float> Floats(int first, int count) => new((float*)Data + (long)first * Cols, count * Cols);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private ReadOnlySpan<ushort> Halves(int first, int count) => new((ushort*)Data + (long)first * Cols, count * Cols);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private ReadOnlySpan<byte> Blocks(int first, int count) => new(Data + first * _rowBytes, (int)(count * _rowBytes));

        /// <summary>The values of an F32 weight, for <see cref="ComputeDevice.UpdateWeight"/>.</summary>
        public Span<float> Writable => Type == ElementType.F32
            ? new Span<float>(Data, checked(Rows * Cols))
            : throw new InvalidOperationException($"only F32 weights can be updated, not {Type}");

        private int _finiteHalves; // 0: not yet scanned, 1: no infinity or NaN, 2: some

        /// <summary>Whether an F16 weight holds no infinity or NaN, so that its rows widen without looking for
        /// them (<see cref="FiniteF16Widening"/>); scanned once, on first use.</summary>
        private bool FiniteHalves
        {
            get
            {
                if (_finiteHalves == 0) _finiteHalves = F16Widening.AnyNonFinite(Halves(0, Rows)) ? 2 : 1;
                return _finiteHalves == 1;
            }
        }

        [ThreadStatic] private static float[]? t_widened;

        /// <summary>Rows [first, first + count) as floats: the stored rows for F32, else widened (or
        /// dequantized) into a per-thread scratch buffer (valid until the next call on this thread).
        /// 16-bit and quantized weights stay so in memory; only the rows in use are widened, into
        /// cache-resident scratch. <paramref name="ahead"/>: how far past each returned row the next
        /// block's rows lie, for the tile to prefetch while it streams (0 for scratch, which the
        /// widening already prefetched for).</summary>
        public ReadOnlySpan<float> RowBlock(int first, int count, out int ahead)
        {
            var length = count * Cols;
            if (Type == ElementType.F32)
            {
                ahead = length;
                return Floats(first, count);
            }
            if (t_widened is null || t_widened.Length < length) t_widened = new float[Math.Max(length, 4 * Cols)];
            var scratch = t_widened.AsSpan(0, length);
            Widen(first, count, scratch, ahead: length);
            ahead = 0;
            return scratch;
        }

        /// <summary>Dots of rows [first, first + 4) with x; 16-bit rows are widened in registers,
        /// quantized rows dequantized a block at a time.</summary>
        public void Dot4x1(int first, ReadOnlySpan<float> x, Span<float> result)
        {
            var ahead = 4 * Cols; // the next 4 rows
            switch (Type)
            {
                case ElementType.F32:
                    var w = Floats(first, 4);
                    FloatTiles.Dot4(x, w[..Cols], w.Slice(Cols, Cols), w.Slice(2 * Cols, Cols), w.Slice(3 * Cols, Cols), result, ahead);
                    break;
                case ElementType.F16 when FiniteHalves: HalfTiles.Dot4x1<FiniteF16Widening>(Halves(first, 4), x, result, ahead); break;
                case ElementType.F16: HalfTiles.Dot4x1<F16Widening>(Halves(first, 4), x, result, ahead); break;
                case ElementType.BF16: HalfTiles.Dot4x1<BF16Widening>(Halves(first, 4), x, result, ahead); break;
                case ElementType.Q8_0 when BlockTiles.Supported: BlockTiles.Dot4x1<Q8_0Blocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q4_0 when BlockTiles.Supported: BlockTiles.Dot4x1<Q4_0Blocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q4_1 when BlockTiles.Supported: BlockTiles.Dot4x1<Q4_1Blocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q5_0 when BlockTiles.Supported: BlockTiles.Dot4x1<Q5_0Blocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q5_1 when BlockTiles.Supported: BlockTiles.Dot4x1<Q5_1Blocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q2_K when BlockTiles.Supported: BlockTiles.Dot4x1<Q2_KBlocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q3_K when BlockTiles.Supported: BlockTiles.Dot4x1<Q3_KBlocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q4_K when BlockTiles.Supported: BlockTiles.Dot4x1<Q4_KBlocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q5_K when BlockTiles.Supported: BlockTiles.Dot4x1<Q5_KBlocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case ElementType.Q6_K when BlockTiles.Supported: BlockTiles.Dot4x1<Q6_KBlocks>(Blocks(first, 4), (int)_rowBytes, x, result); break;
                case var _ when Type.IsQuantized(): // no AVX2: dequantized into scratch, then the F32 tile
                    var rows = RowBlock(first, 4, out _);
                    FloatTiles.Dot4(x, rows[..Cols], rows.Slice(Cols, Cols), rows.Slice(2 * Cols, Cols), rows.Slice(3 * Cols, Cols), result);
                    break;
                default:
                    throw ElementTypes.Unsupported(Type, "the cpu device's matmul");
            }
        }

        /// <summary>Dots of rows [first, first + 4) with four input rows (result[4 * j + k] = w_j . x_k; short tiles
        /// repeat their last input row), each row converted once in registers for the four.</summary>
        public void Dot4x4(int first, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> result)
        {
            var ahead = 4 * Cols; // the next 4 rows
            var rb = (int)_rowBytes;
            switch (Type)
            {
                case ElementType.F32: FloatTiles.Dot4x4(Floats(first, 4), x0, x1, x2, x3, result); break;
                case ElementType.F16 when FiniteHalves: HalfTiles.Dot4x4<FiniteF16Widening>(Halves(first, 4), x0, x1, x2, x3, result, ahead); break;
                case ElementType.F16: HalfTiles.Dot4x4<F16Widening>(Halves(first, 4), x0, x1, x2, x3, result, ahead); break;
                case ElementType.BF16: HalfTiles.Dot4x4<BF16Widening>(Halves(first, 4), x0, x1, x2, x3, result, ahead); break;
                case ElementType.Q8_0 when BlockTiles.Supported: BlockTiles.Dot4x4<Q8_0Blocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q4_0 when BlockTiles.Supported: BlockTiles.Dot4x4<Q4_0Blocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q4_1 when BlockTiles.Supported: BlockTiles.Dot4x4<Q4_1Blocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q5_0 when BlockTiles.Supported: BlockTiles.Dot4x4<Q5_0Blocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q5_1 when BlockTiles.Supported: BlockTiles.Dot4x4<Q5_1Blocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q2_K when BlockTiles.Supported: BlockTiles.Dot4x4<Q2_KBlocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q3_K when BlockTiles.Supported: BlockTiles.Dot4x4<Q3_KBlocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q4_K when BlockTiles.Supported: BlockTiles.Dot4x4<Q4_KBlocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q5_K when BlockTiles.Supported: BlockTiles.Dot4x4<Q5_KBlocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case ElementType.Q6_K when BlockTiles.Supported: BlockTiles.Dot4x4<Q6_KBlocks>(Blocks(first, 4), rb, x0, x1, x2, x3, result); break;
                case var _ when Type.IsQuantized(): // no AVX2: dequantized into scratch, then the F32 tile
                    FloatTiles.Dot4x4(RowBlock(first, 4, out _), x0, x1, x2, x3, result);
                    break;
                default:
                    throw ElementTypes.Unsupported(Type, "the cpu device's matmul");
            }
        }

        /// <summary>Row <paramref name="index"/> as floats, exactly.</summary>
        public void Row(int index, Span<float> destination)
        {
            if (Type == ElementType.F32) Floats(index, 1).CopyTo(destination);
            else Widen(index, 1, destination);
        }

        private void Widen(int first, int count, Span<float> destination, int ahead = 0)
        {
            var aheadBytes = ahead > 0 ? (int)(count * _rowBytes) : 0; // quantized rows: the same rows of the next block
            switch (Type)
            {
                case ElementType.F16 when FiniteHalves: HalfTiles.Widen<FiniteF16Widening>(Halves(first, count), destination, ahead); break;
                case ElementType.F16: HalfTiles.Widen<F16Widening>(Halves(first, count), destination, ahead); break;
                case ElementType.BF16: HalfTiles.Widen<BF16Widening>(Halves(first, count), destination, ahead); break;
                case ElementType.Q8_0 when BlockTiles.Supported: BlockTiles.Dequantize<Q8_0Blocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q4_0 when BlockTiles.Supported: BlockTiles.Dequantize<Q4_0Blocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q4_1 when BlockTiles.Supported: BlockTiles.Dequantize<Q4_1Blocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q5_0 when BlockTiles.Supported: BlockTiles.Dequantize<Q5_0Blocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q5_1 when BlockTiles.Supported: BlockTiles.Dequantize<Q5_1Blocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q2_K when BlockTiles.Supported: BlockTiles.Dequantize<Q2_KBlocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q3_K when BlockTiles.Supported: BlockTiles.Dequantize<Q3_KBlocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q4_K when BlockTiles.Supported: BlockTiles.Dequantize<Q4_KBlocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q5_K when BlockTiles.Supported: BlockTiles.Dequantize<Q5_KBlocks>(Blocks(first, count), destination, aheadBytes); break;
                case ElementType.Q6_K when BlockTiles.Supported: BlockTiles.Dequantize<Q6_KBlocks>(Blocks(first, count), destination, aheadBytes); break;
                case var _ when Type.IsQuantized(): Quantization.Dequantize(Type, Blocks(first, count), destination[..(count * Cols)]); break; // no AVX2: the same values
                default: throw ElementTypes.Unsupported(Type, "the cpu device's widening");
            }
        }

        /// <inheritdoc/>
        public override void Dispose()
        {
            if (_data == null) return;
            _owner!.AllocatedBytes -= Bytes;
            NativeMemory.AlignedFree(_data);
            _data = null;
            _owner = null;
            GC.SuppressFinalize(this);
        }

        /// <summary>A weight nobody disposed still gives its memory back.</summary>
        ~CpuWeight()
        {
            if (_data != null) NativeMemory.AlignedFree(_data);
        }
    }
}
