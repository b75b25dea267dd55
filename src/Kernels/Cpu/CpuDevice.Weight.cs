using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

public sealed partial class CpuDevice
{
    /// <summary>A weight on the <c>cpu</c> device, in its stored element type. Its rows lie in segments, one
    /// under another: rows handed over with a lease (a memory-mapped model file) are read in place, the
    /// others copied into unmanaged memory the weight owns; both go on <see cref="Dispose"/>. Every segment
    /// starts at a multiple of 4 rows, so the rows a tile reads at once (4 from a multiple of 4, 2 from an
    /// even row, or 1) lie in one segment; parts that would break that are copied into one segment.
    /// It hands its rows to the tiles: 16-bit rows are widened in registers (<see cref="HalfTiles"/>),
    /// quantized rows dequantized a block at a time (<see cref="BlockTiles"/>), or widened into
    /// per-thread scratch where a tile needs floats. The tiles load unaligned, so rows in place need
    /// no alignment.</summary>
    private sealed unsafe class CpuWeight : DeviceWeight
    {
        /// <summary>Rows from <see cref="FirstRow"/> to the next segment's lie from <see cref="Start"/> on.</summary>
        private readonly record struct Segment(int FirstRow, nint Start);

        /// <summary>Rows a tile reads at once, at most, from a multiple of itself.</summary>
        private const int TileRows = 4;

        private Segment[]? _segments;
        private byte* _copied;
        private IDisposable[] _leases;
        private CpuDevice? _device;
        private readonly long _rowBytes;

        /// <summary>Bytes of the rows copied into memory the weight owns (the rest are read in place).</summary>
        public long OwnedBytes { get; }

        public CpuWeight(CpuDevice device, ElementType type, ReadOnlySpan<WeightRows> parts, int rows, int cols) : base(type, rows, cols)
        {
            if (parts.IsEmpty) throw new ArgumentException($"no rows for a {type} weight [{rows}, {cols}]");
            _rowBytes = type.RowBytes(cols);
            long total = 0;
            foreach (var part in parts) total += part.Rows;
            if (total != rows) throw new ArgumentException($"parts of {total} rows for a {type} weight [{rows}, {cols}]");
            // A segment starts wherever rows in place meet other rows; copied rows join the copied rows above them.
            var inPlace = true;
            for (var (k, first) = (1, parts[0].Rows); k < parts.Length; first += parts[k++].Rows)
                if ((parts[k].Lease ?? parts[k - 1].Lease) is not null && first % TileRows != 0) inPlace = false;
            var segments = new List<Segment>();
            var leases = new List<IDisposable>();
            foreach (var part in parts)
                if (inPlace && part.Lease is not null) leases.Add(part.Lease);
                else OwnedBytes += part.Rows * _rowBytes;
            if (OwnedBytes > 0) _copied = (byte*)NativeMemory.AlignedAlloc((nuint)OwnedBytes, 64);
            long copied = 0;
            for (var (k, first) = (0, 0); k < parts.Length; first += parts[k++].Rows)
            {
                var (part, bytes) = (parts[k], parts[k].Rows * _rowBytes);
                var kept = inPlace && part.Lease is not null;
                var start = kept ? part.Address : (nint)(_copied + copied);
                if (!kept)
                {
                    new ReadOnlySpan<byte>((void*)part.Address, checked((int)bytes)).CopyTo(new Span<byte>((void*)start, (int)bytes));
                    copied += bytes;
                    part.Lease?.Dispose();
                }
                // Rows that continue the previous segment's join it (copied rows always do).
                if (segments.Count > 0 && segments[^1].Start + (nint)((first - segments[^1].FirstRow) * _rowBytes) == start) continue;
                segments.Add(new Segment(first, start));
            }
            _segments = [.. segments];
            _leases = [.. leases];
            _device = device;
            device.AllocatedBytes += OwnedBytes;
            device.BorrowedBytes += Bytes - OwnedBytes;
        }

        /// <summary>The first byte of row <paramref name="row"/>; the rows a tile reads with it lie in its segment.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private byte* RowAddress(int row)
        {
            var segments = _segments ?? throw Disposed();
            var s = segments.Length - 1;
            while (row < segments[s].FirstRow) s--;
            return (byte*)segments[s].Start + (row - segments[s].FirstRow) * _rowBytes;
        }

        /// <summary>The row after the last of <paramref name="row"/>'s segment: rows [row, SegmentEnd(row)) lie
        /// one after another in memory (a panel of rows must not cross a segment).</summary>
        public int SegmentEnd(int row)
        {
            var segments = _segments ?? throw Disposed();
            var s = 0;
            while (s < segments.Length && segments[s].FirstRow <= row) s++;
            return s < segments.Length ? segments[s].FirstRow : Rows;
        }

        private static ObjectDisposedException Disposed() => new(nameof(CpuWeight));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private ReadOnlySpan<float> Floats(int first, int count) => new(RowAddress(first), count * Cols);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private ReadOnlySpan<ushort> Halves(int first, int count) => new(RowAddress(first), count * Cols);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private ReadOnlySpan<byte> Blocks(int first, int count) => new(RowAddress(first), (int)(count * _rowBytes));

        /// <summary>The values of an F32 weight the device owns, for <see cref="ComputeDevice.UpdateWeight"/>
        /// (rows read in place lie in a read-only map).</summary>
        public Span<float> Writable => Type != ElementType.F32
            ? throw new InvalidOperationException($"only F32 weights can be updated, not {Type}")
            : OwnedBytes != Bytes
                ? throw new InvalidOperationException("a weight read in place from a model file cannot be updated")
                : new Span<float>(RowAddress(0), checked(Rows * Cols));

        private int _finiteHalves; // 0: not yet scanned, 1: no infinity or NaN, 2: some

        /// <summary>Whether an F16 weight holds no infinity or NaN, so that its rows widen without looking for
        /// them (<see cref="FiniteF16Widening"/>); scanned once, on first use.</summary>
        private bool FiniteHalves
        {
            get
            {
                if (_finiteHalves != 0) return _finiteHalves == 1;
                var any = false;
                for (var row = 0; row < Rows && !any; row = SegmentEnd(row)) any = F16Widening.AnyNonFinite(Halves(row, SegmentEnd(row) - row));
                _finiteHalves = any ? 2 : 1;
                return _finiteHalves == 1;
            }
        }

        [ThreadStatic] private static float[]? t_widened;

        /// <summary>Rows [first, first + count) as floats: the stored rows for F32, else widened (or
        /// dequantized) into a per-thread scratch buffer (valid until the next call on this thread).
        /// 16-bit and quantized weights stay so in memory; only the rows in use are widened, into
        /// cache-resident scratch, prefetching the next block's rows while it widens.</summary>
        public ReadOnlySpan<float> RowBlock(int first, int count)
        {
            if (first + count > SegmentEnd(first)) throw new ArgumentOutOfRangeException(nameof(count), "a block of rows crosses a segment of the weight");
            var length = count * Cols;
            if (Type == ElementType.F32) return Floats(first, count);
            if (t_widened is null || t_widened.Length < length) t_widened = new float[Math.Max(length, 4 * Cols)];
            var scratch = t_widened.AsSpan(0, length);
            Widen(first, count, scratch, ahead: length);
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
                    var rows = RowBlock(first, 4);
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
                    FloatTiles.Dot4x4(RowBlock(first, 4), x0, x1, x2, x3, result);
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
            if (_segments is null) return;
            _segments = null;
            _device!.AllocatedBytes -= OwnedBytes;
            _device.BorrowedBytes -= Bytes - OwnedBytes;
            _device = null;
            NativeMemory.AlignedFree(_copied);
            _copied = null;
            foreach (var lease in _leases) lease.Dispose();
            _leases = [];
            GC.SuppressFinalize(this);
        }

        /// <summary>A weight nobody disposed still gives its memory back (a lease's memory goes with its owner).</summary>
        ~CpuWeight()
        {
            if (_copied != null) NativeMemory.AlignedFree(_copied);
        }
    }
}
