using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Reference;

/// <summary>
/// The inner loops of the <c>cpu</c> device, written with <see cref="Vector{T}"/> (AVX2 on x64, NEON on
/// Arm64) instead of one System.Numerics.Tensors call per dot product: at the small widths of a
/// TinyStories model (64 columns, head size 8) the call overhead of TensorPrimitives was most of the
/// time.
///
/// Every dot product has ONE summation order, whichever tile computes it: a single vector
/// accumulator over the full vectors in column order (fused multiply-add), then
/// <see cref="Vector.Sum{T}(Vector{T})"/>, then the leftover columns in order (fused). The tiles
/// (<see cref="Dot4"/>: 4 weight rows x 1 input row for decode, 1 query x 4 keys for attention;
/// <see cref="Dot2x4"/>: 2 weight rows x 4 input rows for blocks, <see cref="Dot2x2"/> for their last
/// one or two rows; <see cref="Dot4x1{TWidening}"/>:
/// the decode tile over 16-bit rows) only decide which dot products run side by side, for
/// instruction-level parallelism and so that a vector loaded once serves several. So a block of rows
/// gives bit-identical results to one-row calls.
///
/// Quantized rows (Q8_0, Q4_0) have their own order where AVX2 runs: per 32-value block, the dot of
/// the integer quants with x over 16 lanes, scaled once by the block's d and accumulated (fused); then
/// the lane sum (<see cref="BlockDot"/>; tiles <see cref="Dot4x1Blocks{TBlocks}"/> for decode and
/// <see cref="Dot1x4Blocks{TBlocks}"/> for blocks). Multiplying every weight by d first costs a third
/// more vector work and kept the decode GEMV compute-bound; this order keeps it at memory speed.
///
/// Weight tiles take an <c>ahead</c> distance: while they stream their rows they ask the cache for the
/// rows of the next tile (that many elements further on). On a model whose weights come from DRAM the
/// hardware prefetchers keep up with the decode tile but not with the block tile, which spends twice
/// the instructions per weight byte: software prefetch took a 4-row block over stories110M's LM head
/// from 13-14 to 21-23 GB/s (2 cores, 29 GB/s read bandwidth; perf/README.md). Hints change no result.
/// </summary>
internal static class ManagedKernels
{
    private static int Width => Vector<float>.Count;

    /// <summary>Asks the cache for the line holding element <paramref name="index"/> of the memory
    /// that starts at <paramref name="data"/>; the index may lie past the span (the next tile's rows):
    /// a prefetch never faults and reads nothing into the program. No-op where x86 prefetch is absent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Prefetch<T>(ReadOnlySpan<T> data, int index) where T : unmanaged
    {
        if (Sse.IsSupported) Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref MemoryMarshal.GetReference(data), index)));
    }

    /// <summary>Dots of one vector <paramref name="shared"/> with four others, each in the canonical order:
    /// one weight row against four input rows (blocks), or, since a * b and fma(a, b, c) are exact
    /// whichever operand comes first, one input row against four weight rows (decode). A block of
    /// fewer than four rows passes its last row again for the missing ones and ignores those results:
    /// four independent accumulators still run faster than one dependent chain per row.</summary>
    public static void Dot4(ReadOnlySpan<float> shared, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> result,
        int ahead = 0)
    {
        var w = shared;
        var n = w.Length;
        var vw = MemoryMarshal.Cast<float, Vector<float>>(w);
        var v0 = MemoryMarshal.Cast<float, Vector<float>>(x0[..n]);
        var v1 = MemoryMarshal.Cast<float, Vector<float>>(x1[..n]);
        var v2 = MemoryMarshal.Cast<float, Vector<float>>(x2[..n]);
        var v3 = MemoryMarshal.Cast<float, Vector<float>>(x3[..n]);
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (var i = 0; i < vw.Length; i++)
        {
            if (ahead > 0)
            {
                Prefetch(x0, i * Width + ahead);
                Prefetch(x1, i * Width + ahead);
                Prefetch(x2, i * Width + ahead);
                Prefetch(x3, i * Width + ahead);
            }
            var wi = vw[i];
            a0 = Vector.FusedMultiplyAdd(wi, v0[i], a0);
            a1 = Vector.FusedMultiplyAdd(wi, v1[i], a1);
            a2 = Vector.FusedMultiplyAdd(wi, v2[i], a2);
            a3 = Vector.FusedMultiplyAdd(wi, v3[i], a3);
        }
        float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), s2 = Vector.Sum(a2), s3 = Vector.Sum(a3);
        for (var i = vw.Length * Width; i < n; i++)
        {
            s0 = MathF.FusedMultiplyAdd(w[i], x0[i], s0);
            s1 = MathF.FusedMultiplyAdd(w[i], x1[i], s1);
            s2 = MathF.FusedMultiplyAdd(w[i], x2[i], s2);
            s3 = MathF.FusedMultiplyAdd(w[i], x3[i], s3);
        }
        result[0] = s0;
        result[1] = s1;
        result[2] = s2;
        result[3] = s3;
    }

    /// <summary>y += a * x (element-wise, each element one fused multiply-add).</summary>
    public static void MultiplyAdd(ReadOnlySpan<float> x, float a, Span<float> y)
    {
        var n = y.Length;
        var vx = MemoryMarshal.Cast<float, Vector<float>>(x[..n]);
        var vy = MemoryMarshal.Cast<float, Vector<float>>(y);
        var va = new Vector<float>(a);
        for (var i = 0; i < vy.Length; i++) vy[i] = Vector.FusedMultiplyAdd(vx[i], va, vy[i]);
        for (var i = vy.Length * Width; i < n; i++) y[i] = MathF.FusedMultiplyAdd(x[i], a, y[i]);
    }

    /// <summary>16-bit weight patterns to float32, exactly, with <typeparamref name="TWidening"/>
    /// (<see cref="F16Widening"/> or <see cref="BF16Widening"/>).</summary>
    public static void Widen<TWidening>(ReadOnlySpan<ushort> source, Span<float> destination, int ahead = 0) where TWidening : IHalfWidening
    {
        var vs = MemoryMarshal.Cast<ushort, Vector<ushort>>(source);
        var vd = MemoryMarshal.Cast<float, Vector<float>>(destination[..source.Length]);
        for (var i = 0; i < vs.Length; i++)
        {
            if (ahead > 0) Prefetch(source, i * Vector<ushort>.Count + ahead);
            TWidening.Widen(vs[i], out vd[2 * i], out vd[2 * i + 1]);
        }
        for (var i = vs.Length * Vector<ushort>.Count; i < source.Length; i++) destination[i] = TWidening.Widen(source[i]);
    }

    /// <summary>Dots of two weight rows with two input rows (result[4 * j + k] = w_j . x_k for k &lt; 2),
    /// each in the canonical order: the tile for the last one or two rows of a block, which would
    /// otherwise pay for four.</summary>
    public static void Dot2x2(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, Span<float> result, int ahead = 0)
    {
        var n = w0.Length;
        var vw0 = MemoryMarshal.Cast<float, Vector<float>>(w0);
        var vw1 = MemoryMarshal.Cast<float, Vector<float>>(w1[..n]);
        var v0 = MemoryMarshal.Cast<float, Vector<float>>(x0[..n]);
        var v1 = MemoryMarshal.Cast<float, Vector<float>>(x1[..n]);
        Vector<float> a0 = default, a1 = default, b0 = default, b1 = default;
        for (var i = 0; i < vw0.Length; i++)
        {
            if (ahead > 0)
            {
                Prefetch(w0, i * Width + ahead);
                Prefetch(w1, i * Width + ahead);
            }
            var (p, q) = (vw0[i], vw1[i]);
            var x = v0[i];
            a0 = Vector.FusedMultiplyAdd(p, x, a0);
            b0 = Vector.FusedMultiplyAdd(q, x, b0);
            x = v1[i];
            a1 = Vector.FusedMultiplyAdd(p, x, a1);
            b1 = Vector.FusedMultiplyAdd(q, x, b1);
        }
        float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), t0 = Vector.Sum(b0), t1 = Vector.Sum(b1);
        for (var i = vw0.Length * Width; i < n; i++)
        {
            s0 = MathF.FusedMultiplyAdd(w0[i], x0[i], s0);
            s1 = MathF.FusedMultiplyAdd(w0[i], x1[i], s1);
            t0 = MathF.FusedMultiplyAdd(w1[i], x0[i], t0);
            t1 = MathF.FusedMultiplyAdd(w1[i], x1[i], t1);
        }
        (result[0], result[1], result[4], result[5]) = (s0, s1, t0, t1);
    }

    /// <summary>Dots of two weight rows with four input rows (result[4 * j + k] = w_j . x_k), each in
    /// the canonical order: the block tile. Eight accumulators from six loads per step, where
    /// <see cref="Dot4"/> needs five loads for four. Short tiles repeat their last input row, as there.</summary>
    public static void Dot2x4(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1,
        ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> result, int ahead = 0)
    {
        var n = w0.Length;
        var vw0 = MemoryMarshal.Cast<float, Vector<float>>(w0);
        var vw1 = MemoryMarshal.Cast<float, Vector<float>>(w1[..n]);
        var v0 = MemoryMarshal.Cast<float, Vector<float>>(x0[..n]);
        var v1 = MemoryMarshal.Cast<float, Vector<float>>(x1[..n]);
        var v2 = MemoryMarshal.Cast<float, Vector<float>>(x2[..n]);
        var v3 = MemoryMarshal.Cast<float, Vector<float>>(x3[..n]);
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        for (var i = 0; i < vw0.Length; i++)
        {
            if (ahead > 0)
            {
                Prefetch(w0, i * Width + ahead);
                Prefetch(w1, i * Width + ahead);
            }
            var (p, q) = (vw0[i], vw1[i]);
            var x = v0[i];
            a0 = Vector.FusedMultiplyAdd(p, x, a0);
            b0 = Vector.FusedMultiplyAdd(q, x, b0);
            x = v1[i];
            a1 = Vector.FusedMultiplyAdd(p, x, a1);
            b1 = Vector.FusedMultiplyAdd(q, x, b1);
            x = v2[i];
            a2 = Vector.FusedMultiplyAdd(p, x, a2);
            b2 = Vector.FusedMultiplyAdd(q, x, b2);
            x = v3[i];
            a3 = Vector.FusedMultiplyAdd(p, x, a3);
            b3 = Vector.FusedMultiplyAdd(q, x, b3);
        }
        Span<float> s = [Vector.Sum(a0), Vector.Sum(a1), Vector.Sum(a2), Vector.Sum(a3), Vector.Sum(b0), Vector.Sum(b1), Vector.Sum(b2), Vector.Sum(b3)];
        for (var i = vw0.Length * Width; i < n; i++)
        {
            s[0] = MathF.FusedMultiplyAdd(w0[i], x0[i], s[0]);
            s[1] = MathF.FusedMultiplyAdd(w0[i], x1[i], s[1]);
            s[2] = MathF.FusedMultiplyAdd(w0[i], x2[i], s[2]);
            s[3] = MathF.FusedMultiplyAdd(w0[i], x3[i], s[3]);
            s[4] = MathF.FusedMultiplyAdd(w1[i], x0[i], s[4]);
            s[5] = MathF.FusedMultiplyAdd(w1[i], x1[i], s[5]);
            s[6] = MathF.FusedMultiplyAdd(w1[i], x2[i], s[6]);
            s[7] = MathF.FusedMultiplyAdd(w1[i], x3[i], s[7]);
        }
        s.CopyTo(result);
    }

    /// <summary><see cref="Dot4"/> of one input row x with four consecutive rows of 16-bit weights (w holds 4 * x.Length
    /// patterns), widened in registers: the same products summed in the same order as widening the
    /// rows first, without writing and re-reading a widened copy (decode's GEMV on f16/bf16 models).</summary>
    public static void Dot4x1<TWidening>(ReadOnlySpan<ushort> w, ReadOnlySpan<float> x, Span<float> result, int ahead = 0) where TWidening : IHalfWidening
    {
        var n = x.Length;
        var vx = MemoryMarshal.Cast<float, Vector<float>>(x);
        var h0 = MemoryMarshal.Cast<ushort, Vector<ushort>>(w[..n]);
        var h1 = MemoryMarshal.Cast<ushort, Vector<ushort>>(w.Slice(n, n));
        var h2 = MemoryMarshal.Cast<ushort, Vector<ushort>>(w.Slice(2 * n, n));
        var h3 = MemoryMarshal.Cast<ushort, Vector<ushort>>(w.Slice(3 * n, n));
        Vector<float> a0 = default, a1 = default, a2 = default, a3 = default;
        for (var k = 0; k < h0.Length; k++) // one 16-bit vector covers two float vectors, in column order
        {
            if (ahead > 0)
                for (var j = 0; j < 4; j++) Prefetch(w, j * n + k * Vector<ushort>.Count + ahead);
            var (xl, xh) = (vx[2 * k], vx[2 * k + 1]);
            TWidening.Widen(h0[k], out var l, out var h);
            a0 = Vector.FusedMultiplyAdd(h, xh, Vector.FusedMultiplyAdd(l, xl, a0));
            TWidening.Widen(h1[k], out l, out h);
            a1 = Vector.FusedMultiplyAdd(h, xh, Vector.FusedMultiplyAdd(l, xl, a1));
            TWidening.Widen(h2[k], out l, out h);
            a2 = Vector.FusedMultiplyAdd(h, xh, Vector.FusedMultiplyAdd(l, xl, a2));
            TWidening.Widen(h3[k], out l, out h);
            a3 = Vector.FusedMultiplyAdd(h, xh, Vector.FusedMultiplyAdd(l, xl, a3));
        }
        if (vx.Length > 2 * h0.Length) // an odd float vector left: widen it lane by lane
        {
            var first = (vx.Length - 1) * Width;
            Span<float> lanes = stackalloc float[Width];
            a0 = Vector.FusedMultiplyAdd(WidenLanes<TWidening>(w.Slice(first, Width), lanes), vx[^1], a0);
            a1 = Vector.FusedMultiplyAdd(WidenLanes<TWidening>(w.Slice(n + first, Width), lanes), vx[^1], a1);
            a2 = Vector.FusedMultiplyAdd(WidenLanes<TWidening>(w.Slice(2 * n + first, Width), lanes), vx[^1], a2);
            a3 = Vector.FusedMultiplyAdd(WidenLanes<TWidening>(w.Slice(3 * n + first, Width), lanes), vx[^1], a3);
        }
        float s0 = Vector.Sum(a0), s1 = Vector.Sum(a1), s2 = Vector.Sum(a2), s3 = Vector.Sum(a3);
        for (var i = vx.Length * Width; i < n; i++)
        {
            s0 = MathF.FusedMultiplyAdd(TWidening.Widen(w[i]), x[i], s0);
            s1 = MathF.FusedMultiplyAdd(TWidening.Widen(w[n + i]), x[i], s1);
            s2 = MathF.FusedMultiplyAdd(TWidening.Widen(w[2 * n + i]), x[i], s2);
            s3 = MathF.FusedMultiplyAdd(TWidening.Widen(w[3 * n + i]), x[i], s3);
        }
        result[0] = s0;
        result[1] = s1;
        result[2] = s2;
        result[3] = s3;
    }

    /// <summary>Whether the quantized tiles (<see cref="Dot4x1Blocks{TBlocks}"/>, <see cref="Dot1x4Blocks{TBlocks}"/>)
    /// run here: they dequantize in AVX2 or AVX-512 registers. Elsewhere quantized rows are dequantized
    /// into scratch and go through the F32 tiles.</summary>
    public static bool CanDotBlocks => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The dot of one quantized block with 32 columns of x, folded: s = q . x over 16 lanes
    /// (lane j: q[j] x[j], then q[16 + j] x[16 + j] added fused, the integer quants converted exactly),
    /// then acc + s * d (fused). A few more roundings per block than d * q . x dequantized first, and a
    /// fraction of the vector work: the scale is applied once per block, not once per weight. Every
    /// quantized tile computes each dot product through this, so they agree bit for bit; with AVX-512
    /// or without (a 16-lane vector is then two AVX2 registers) the arithmetic is the same.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> BlockDot(Vector512<float> low, Vector512<float> high, float d, float* x, Vector512<float> acc) =>
        Vector512.FusedMultiplyAdd(Vector512.FusedMultiplyAdd(high, Vector512.Load(x + 16), low * Vector512.Load(x)), Vector512.Create(d), acc);

    /// <summary><see cref="BlockDot"/> of the block at <paramref name="block"/> ([f16 d | quants]), its
    /// quants converted and its scale looked up in <paramref name="half"/> (<see cref="F16Widening.Halves"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> BlockDot<TBlocks>(byte* block, float* half, float* x, Vector512<float> acc) where TBlocks : IBlockDequantizing
    {
        ToSingles<TBlocks>(block + 2, out var low, out var high);
        return BlockDot(low, high, half[*(ushort*)block], x, acc);
    }

    /// <summary>A block's 32 quants as floats, exactly: <paramref name="low"/> holds values 0..15,
    /// <paramref name="high"/> 16..31, by the block type's AVX-512 conversion where that runs, else by its AVX2 one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void ToSingles<TBlocks>(byte* quants, out Vector512<float> low, out Vector512<float> high) where TBlocks : IBlockDequantizing
    {
        if (Avx512F.IsSupported) TBlocks.ToSingles(quants, out low, out high);
        else TBlocks.ToSinglesAvx2(quants, out low, out high);
    }

    /// <summary>The decode tile over quantized rows: <see cref="BlockDot"/> of one input row x with four
    /// consecutive rows (w holds 4 rows of <paramref name="rowBytes"/>; x.Length is a multiple of 32), four
    /// accumulators, then <see cref="Vector512.Sum{T}(Vector512{T})"/>. Prefetches the next four rows as the
    /// other weight tiles do. Needs <see cref="CanDotBlocks"/>.</summary>
    public static unsafe void Dot4x1Blocks<TBlocks>(ReadOnlySpan<byte> w, int rowBytes, ReadOnlySpan<float> x, Span<float> result) where TBlocks : IBlockDequantizing
    {
        var half = F16Widening.Halves; // before the accumulators exist: see F16Widening.Halves
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        fixed (byte* pw = w)
        fixed (float* px = x)
        {
            for (int offset = 0, column = 0; offset < rowBytes; offset += TBlocks.BlockBytes, column += BlockLength)
            {
                for (var row = 4; row < 8; row++) Sse.Prefetch0(pw + row * rowBytes + offset); // the next tile's rows
                var block = pw + offset;
                a0 = BlockDot<TBlocks>(block, half, px + column, a0);
                a1 = BlockDot<TBlocks>(block + rowBytes, half, px + column, a1);
                a2 = BlockDot<TBlocks>(block + 2 * rowBytes, half, px + column, a2);
                a3 = BlockDot<TBlocks>(block + 3 * rowBytes, half, px + column, a3);
            }
        }
        result[0] = Vector512.Sum(a0);
        result[1] = Vector512.Sum(a1);
        result[2] = Vector512.Sum(a2);
        result[3] = Vector512.Sum(a3);
    }

    /// <summary>The block tile over quantized rows: <see cref="BlockDot"/> of one quantized row with four
    /// input rows (result[k] = w . x_k), the row's quants converted once for all four. Short tiles repeat
    /// their last input row. <paramref name="ahead"/>: bytes from this row to the one to prefetch.
    /// Needs <see cref="CanDotBlocks"/>.</summary>
    public static unsafe void Dot1x4Blocks<TBlocks>(ReadOnlySpan<byte> w, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2,
        ReadOnlySpan<float> x3, Span<float> result, int ahead) where TBlocks : IBlockDequantizing
    {
        var n = x0.Length;
        if (w.Length != n / BlockLength * TBlocks.BlockBytes || x1.Length != n || x2.Length != n || x3.Length != n) throw new ArgumentException("a quantized row and its input rows disagree in length");
        var half = F16Widening.Halves; // before the accumulators exist: see F16Widening.Halves
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        fixed (byte* pw = w)
        fixed (float* p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            for (int offset = 0, column = 0; offset < w.Length; offset += TBlocks.BlockBytes, column += BlockLength)
            {
                Sse.Prefetch0(pw + offset + ahead);
                var block = pw + offset;
                ToSingles<TBlocks>(block + 2, out var low, out var high);
                var d = half[*(ushort*)block];
                a0 = BlockDot(low, high, d, p0 + column, a0);
                a1 = BlockDot(low, high, d, p1 + column, a1);
                a2 = BlockDot(low, high, d, p2 + column, a2);
                a3 = BlockDot(low, high, d, p3 + column, a3);
            }
        }
        result[0] = Vector512.Sum(a0);
        result[1] = Vector512.Sum(a1);
        result[2] = Vector512.Sum(a2);
        result[3] = Vector512.Sum(a3);
    }

    /// <summary>Values per quantized block.</summary>
    public const int BlockLength = Q8_0Format.BlockLength;

    /// <summary>Quantized rows (whole blocks, one after another) to float32: d * q, exactly: the signed
    /// quants widened to int32, converted and multiplied by d (at most 11 + 8 significant bits).</summary>
    public static unsafe void Dequantize<TBlocks>(ReadOnlySpan<byte> blocks, Span<float> destination) where TBlocks : IBlockDequantizing
    {
        if (blocks.Length % TBlocks.BlockBytes != 0 || destination.Length < blocks.Length / TBlocks.BlockBytes * BlockLength) throw new ArgumentException("blocks and destination disagree in length");
        fixed (byte* start = blocks)
        for (int offset = 0, b = 0; offset < blocks.Length; offset += TBlocks.BlockBytes, b++)
        {
            var block = start + offset;
            var d = Vector256.Create(F16Widening.Widen(*(ushort*)block));
            var (low, high) = Vector256.Widen(TBlocks.Quants(block + 2));
            var (q0, q1) = Vector256.Widen(low);
            var (q2, q3) = Vector256.Widen(high);
            var values = destination.Slice(b * BlockLength, BlockLength);
            (Vector256.ConvertToSingle(q0) * d).CopyTo(values);
            (Vector256.ConvertToSingle(q1) * d).CopyTo(values[8..]);
            (Vector256.ConvertToSingle(q2) * d).CopyTo(values[16..]);
            (Vector256.ConvertToSingle(q3) * d).CopyTo(values[24..]);
        }
    }

    private static Vector<float> WidenLanes<TWidening>(ReadOnlySpan<ushort> bits, Span<float> lanes) where TWidening : IHalfWidening
    {
        for (var i = 0; i < lanes.Length; i++) lanes[i] = TWidening.Widen(bits[i]);
        return new Vector<float>(lanes);
    }

    /// <summary>output[d] = sum_t weights[t] * values[offset + t * stride + d], t ascending (one fused
    /// multiply-add per term), for d in [0, output.Length).</summary>
    public static void WeightedSum(ReadOnlySpan<float> weights, ReadOnlySpan<float> values, int offset, int stride, Span<float> output)
    {
        var n = output.Length;
        var vectors = n / Width;
        for (var c = 0; c < vectors; c++)
        {
            var acc = Vector<float>.Zero;
            var start = offset + c * Width;
            for (var t = 0; t < weights.Length; t++)
                acc = Vector.FusedMultiplyAdd(new Vector<float>(values.Slice(start + t * stride, Width)), new Vector<float>(weights[t]), acc);
            acc.CopyTo(output.Slice(c * Width, Width));
        }
        for (var d = vectors * Width; d < n; d++)
        {
            var sum = 0f;
            for (var t = 0; t < weights.Length; t++) sum = MathF.FusedMultiplyAdd(values[offset + t * stride + d], weights[t], sum);
            output[d] = sum;
        }
    }
}

/// <summary>An exact widening of 16-bit weight patterns to float32, whole vectors or one value.</summary>
internal interface IHalfWidening
{
    /// <summary>The 16 lanes of <paramref name="bits"/> as two float vectors, low lanes first.</summary>
    static abstract void Widen(Vector<ushort> bits, out Vector<float> low, out Vector<float> high);

    static abstract float Widen(ushort bits);
}

/// <summary>IEEE binary16 (subnormals, infinities and NaN payloads included).</summary>
internal readonly struct F16Widening : IHalfWidening
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector<ushort> bits, out Vector<float> low, out Vector<float> high)
    {
        Vector.Widen(Vector.AsVectorInt16(bits), out var l, out var h); // sign-extending
        (low, high) = (Widen(l), Widen(h));
    }

    /// <summary>One half, looked up in a table of all 65,536 patterns (256 KB, built once with the exact
    /// <see cref="Half"/> conversion): a load and no branch. What tails and every quantized block's scale
    /// are widened with; a few dozen kilobytes of it are hot, since a model's scales span few exponents.
    /// The bit trick of the vector path cost more than the rest of a Q4_0 block's arithmetic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Widen(ushort bits) => Halves[bits];

    private static readonly float[] Table = BuildTable(); // keeps the pinned table alive

    /// <summary>Every half as a float, indexed by its bit pattern, in memory that never moves. A tile reads
    /// this once, before its accumulators exist: the JIT guards the read with a class-initialisation
    /// check whose slow path is a call, and vector locals live across that call stay in memory for the
    /// whole loop (which halved the Q4_0 GEMV).</summary>
    public static readonly unsafe float* Halves = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(Table));

    private static float[] BuildTable()
    {
        var table = GC.AllocateUninitializedArray<float>(1 << 16, pinned: true);
        for (var bits = 0; bits < table.Length; bits++) table[bits] = (float)BitConverter.UInt16BitsToHalf((ushort)bits);
        return table;
    }

    /// <summary>Half to float on 32-bit lanes holding the 16-bit pattern sign-extended. h << 13 puts
    /// sign, exponent and mantissa in a float's places (the sign's copies land in bits 30..28, which the
    /// mask clears); multiplying by 2^112 rebiases the exponent from 15 to 127, and a half subnormal
    /// becomes a float subnormal that the product renormalises exactly. Exponent 31 (infinity, NaN) is
    /// the only case whose product reaches 2^16; those lanes take the float maximum exponent instead, a
    /// select that runs only when a vector holds one. (Sign extension and one shift: a zero-extended
    /// h << 16 >> 3 made the arithmetic shift a third of the f16 GEMV's time.)</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<float> Widen(Vector<int> h)
    {
        var bits = (h << 13) & new Vector<int>(unchecked((int)0x8FFFE000));
        var value = Vector.AsVectorSingle(bits) * new Vector<float>(5.192296858534828e+33f); // 2^112
        var special = Vector.GreaterThanOrEqual(Vector.Abs(value), new Vector<float>(65536f));
        if (special != Vector<int>.Zero)
            value = Vector.ConditionalSelect(special, Vector.AsVectorSingle(bits | new Vector<int>(0x7F800000)), value);
        return value;
    }
}

/// <summary>bfloat16: the upper 16 bits of a float32.</summary>
internal readonly struct BF16Widening : IHalfWidening
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector<ushort> bits, out Vector<float> low, out Vector<float> high)
    {
        Vector.Widen(bits, out var l, out var h);
        (low, high) = (Vector.AsVectorSingle(l << 16), Vector.AsVectorSingle(h << 16));
    }

    public static float Widen(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}

/// <summary>The quants of a block-quantized type as 32 signed values in column order.</summary>
internal interface IBlockDequantizing
{
    /// <summary>Bytes per block: the f16 scale and the quants.</summary>
    static abstract int BlockBytes { get; }

    /// <summary>The quants (the bytes after the scale) as q, so that value j = d * q[j].</summary>
    static abstract unsafe Vector256<sbyte> Quants(byte* quants);

    /// <summary>q[0..16) and q[16..32) as floats with AVX-512 (exact: small integers).</summary>
    static abstract unsafe void ToSingles(byte* quants, out Vector512<float> low, out Vector512<float> high);

    /// <summary>The same with AVX2 only, 8 lanes at a time (a 16-lane vector is then a register pair).</summary>
    static abstract unsafe void ToSinglesAvx2(byte* quants, out Vector512<float> low, out Vector512<float> high);
}

/// <summary>Q8_0: 32 int8 quants.</summary>
internal readonly struct Q8_0Blocks : IBlockDequantizing
{
    public static int BlockBytes => Q8_0Format.BlockBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<sbyte> Quants(byte* quants) => Vector256.Load((sbyte*)quants);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ToSingles(byte* quants, out Vector512<float> low, out Vector512<float> high)
    {
        low = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)quants)));
        high = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)quants + 16)));
    }

    /// <summary>Each 8 quants sign-extended from memory and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ToSinglesAvx2(byte* quants, out Vector512<float> low, out Vector512<float> high)
    {
        var q = (sbyte*)quants;
        low = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q)), Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 8)));
        high = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 16)), Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 24)));
    }
}

/// <summary>Q4_0: 16 bytes, value j in the low nibble of byte j and value 16 + j in its high nibble, offset by 8.</summary>
internal readonly struct Q4_0Blocks : IBlockDequantizing
{
    public static int BlockBytes => Q4_0Format.BlockBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<sbyte> Quants(byte* quants)
    {
        var bytes = Vector128.Load(quants);
        return Vector256.Create(bytes & Vector128.Create((byte)0x0F), Vector128.ShiftRightLogical(bytes, 4)).AsSByte() - Vector256.Create((sbyte)8);
    }

    /// <summary>Each byte zero-extended to a 32-bit lane; a permutation indexes a table of the 16
    /// values n - 8 by the low nibble (the index's other bits are ignored), then by the high one. Two
    /// table lookups replace masking, offsetting and converting.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ToSingles(byte* quants, out Vector512<float> low, out Vector512<float> high)
    {
        var values = Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);
        var bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(quants));
        low = Avx512F.PermuteVar16x32(values, bytes);
        high = Avx512F.PermuteVar16x32(values, Avx512F.ShiftRightLogical(bytes, 4));
    }

    /// <summary>Each 8 bytes zero-extended from memory to 32-bit lanes, which hold two quants: the low
    /// nibbles masked, the high ones shifted down, both offset by 8 and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void ToSinglesAvx2(byte* quants, out Vector512<float> low, out Vector512<float> high)
    {
        var (first, second) = (Avx2.ConvertToVector256Int32(quants), Avx2.ConvertToVector256Int32(quants + 8));
        var (mask, eight) = (Vector256.Create(0x0F), Vector256.Create(8));
        low = Vector512.Create(Avx.ConvertToVector256Single((first & mask) - eight), Avx.ConvertToVector256Single((second & mask) - eight));
        high = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(first, 4) - eight), Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(second, 4) - eight));
    }
}
