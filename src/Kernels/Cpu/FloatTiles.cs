using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Dot-product tiles over float32 rows, 16 lanes at a time (<see cref="Vector512{T}"/>: one AVX-512
/// register, or a pair of AVX2 registers where AVX-512 is absent).
///   math:  w_j . x_k for the rows of the tile, each in THE canonical order of the cpu device: one 16-lane
///          accumulator over the full 16-value chunks in column order (fused multiply-add), then
///          <see cref="Vector512.Sum{T}(Vector512{T})"/>, then the leftover columns in order (fused). Every
///          weight type is dotted in this order on its exact float values (<see cref="HalfTiles"/>,
///          <see cref="BlockTiles"/> widen or dequantize in registers, or into a panel for these tiles),
///          and tiles only decide which dot products run side by side, so any tiling of a block gives
///          bit for bit the results of one-row calls.
///   tiles: <see cref="Dot4"/> 1 x 4 (decode on f32: one input row against 4 weight rows; attention: one
///          query against 4 keys; a block's odd last weight row), <see cref="Dot4x4"/> 4 weight rows x 4
///          input rows (blocks; 16 accumulators from 8 loads a step), <see cref="Dot2x4"/> the same with
///          2 weight rows (a block's last pair). A short tile repeats its last row and ignores its results.
///   bytes: the weight once per call, 4 * out * in (a block tile's weight rows are re-read from cache for
///          each tile of input rows), input rows from cache, 4 * rows * out written. Weight tiles
///          prefetch the next tile's rows (<c>ahead</c> elements on) while they stream; hints change no
///          result. Prefetches are unconditional (ahead 0 touches the line in use): a branch in a tile's
///          loop makes the JIT spill every accumulator to the stack on each step.
/// </summary>
internal static class FloatTiles
{
    private const int Lanes = 16;

    /// <summary>Asks the cache for the line at <paramref name="address"/>, which may lie past the data (the
    /// next tile's rows): a prefetch never faults. No-op where x86 prefetch is absent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Prefetch(void* address)
    {
        if (Sse.IsSupported) Sse.Prefetch0(address);
    }

    /// <summary><see cref="Prefetch(void*)"/> of element <paramref name="index"/> of the memory that starts
    /// at <paramref name="data"/> (the index may lie past the span).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Prefetch<T>(ReadOnlySpan<T> data, int index) where T : unmanaged =>
        Prefetch(Unsafe.AsPointer(ref Unsafe.Add(ref MemoryMarshal.GetReference(data), index)));

    /// <summary>Dots of one vector <paramref name="shared"/> with four others, each in the canonical order:
    /// one input row against four weight rows (decode), or one weight row against four input rows,
    /// since a * b and fma(a, b, c) are exact whichever operand comes first. A block of fewer than four
    /// rows passes its last row again for the missing ones and ignores those results: four
    /// independent accumulators still run faster than one dependent chain per row.</summary>
    public static unsafe void Dot4(ReadOnlySpan<float> shared, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> result,
        int ahead = 0)
    {
        var n = shared.Length;
        CheckLengths(n, x0, x1, x2, x3);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        fixed (float* pw = shared, p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            var i = 0;
            for (; i + Lanes <= n; i += Lanes)
            {
                Prefetch(p0 + i + ahead);
                Prefetch(p1 + i + ahead);
                Prefetch(p2 + i + ahead);
                Prefetch(p3 + i + ahead);
                var w = Vector512.Load(pw + i);
                a0 = Vector512.FusedMultiplyAdd(w, Vector512.Load(p0 + i), a0);
                a1 = Vector512.FusedMultiplyAdd(w, Vector512.Load(p1 + i), a1);
                a2 = Vector512.FusedMultiplyAdd(w, Vector512.Load(p2 + i), a2);
                a3 = Vector512.FusedMultiplyAdd(w, Vector512.Load(p3 + i), a3);
            }
            result[0] = Tail(Vector512.Sum(a0), pw, p0, i, n);
            result[1] = Tail(Vector512.Sum(a1), pw, p1, i, n);
            result[2] = Tail(Vector512.Sum(a2), pw, p2, i, n);
            result[3] = Tail(Vector512.Sum(a3), pw, p3, i, n);
        }
    }

    /// <summary>Dots of two weight rows with four input rows (result[4 * j + k] = w_j . x_k), each in the
    /// canonical order: a block's last pair of weight rows.</summary>
    public static unsafe void Dot2x4(ReadOnlySpan<float> w0, ReadOnlySpan<float> w1, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1,
        ReadOnlySpan<float> x2, ReadOnlySpan<float> x3, Span<float> result)
    {
        var n = w0.Length;
        CheckLengths(n, w1, x0, x1, x2, x3);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        fixed (float* q0 = w0, q1 = w1, p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            var i = 0;
            for (; i + Lanes <= n; i += Lanes)
            {
                var (u, v) = (Vector512.Load(q0 + i), Vector512.Load(q1 + i));
                var x = Vector512.Load(p0 + i);
                a0 = Vector512.FusedMultiplyAdd(u, x, a0);
                b0 = Vector512.FusedMultiplyAdd(v, x, b0);
                x = Vector512.Load(p1 + i);
                a1 = Vector512.FusedMultiplyAdd(u, x, a1);
                b1 = Vector512.FusedMultiplyAdd(v, x, b1);
                x = Vector512.Load(p2 + i);
                a2 = Vector512.FusedMultiplyAdd(u, x, a2);
                b2 = Vector512.FusedMultiplyAdd(v, x, b2);
                x = Vector512.Load(p3 + i);
                a3 = Vector512.FusedMultiplyAdd(u, x, a3);
                b3 = Vector512.FusedMultiplyAdd(v, x, b3);
            }
            result[0] = Tail(Vector512.Sum(a0), q0, p0, i, n);
            result[1] = Tail(Vector512.Sum(a1), q0, p1, i, n);
            result[2] = Tail(Vector512.Sum(a2), q0, p2, i, n);
            result[3] = Tail(Vector512.Sum(a3), q0, p3, i, n);
            result[4] = Tail(Vector512.Sum(b0), q1, p0, i, n);
            result[5] = Tail(Vector512.Sum(b1), q1, p1, i, n);
            result[6] = Tail(Vector512.Sum(b2), q1, p2, i, n);
            result[7] = Tail(Vector512.Sum(b3), q1, p3, i, n);
        }
    }

    /// <summary>Dots of four consecutive weight rows (w holds 4 rows of x0.Length) with four input rows
    /// (result[4 * j + k] = w_j . x_k), each in the canonical order: the block tile, 16 accumulators from
    /// 4 weight and 4 input loads a step.</summary>
    public static unsafe void Dot4x4(ReadOnlySpan<float> w, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3,
        Span<float> result)
    {
        var n = x0.Length;
        if (w.Length < 4 * n) throw new ArgumentException("a 4x4 tile needs four weight rows");
        CheckLengths(n, x1, x2, x3);
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, b0 = default, b1 = default, b2 = default, b3 = default;
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, d0 = default, d1 = default, d2 = default, d3 = default;
        fixed (float* q0 = w, p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            float* q1 = q0 + n, q2 = q0 + 2 * n, q3 = q0 + 3 * n;
            var i = 0;
            for (; i + Lanes <= n; i += Lanes)
            {
                var (u0, u1, u2, u3) = (Vector512.Load(q0 + i), Vector512.Load(q1 + i), Vector512.Load(q2 + i), Vector512.Load(q3 + i));
                var x = Vector512.Load(p0 + i);
                a0 = Vector512.FusedMultiplyAdd(u0, x, a0);
                b0 = Vector512.FusedMultiplyAdd(u1, x, b0);
                c0 = Vector512.FusedMultiplyAdd(u2, x, c0);
                d0 = Vector512.FusedMultiplyAdd(u3, x, d0);
                x = Vector512.Load(p1 + i);
                a1 = Vector512.FusedMultiplyAdd(u0, x, a1);
                b1 = Vector512.FusedMultiplyAdd(u1, x, b1);
                c1 = Vector512.FusedMultiplyAdd(u2, x, c1);
                d1 = Vector512.FusedMultiplyAdd(u3, x, d1);
                x = Vector512.Load(p2 + i);
                a2 = Vector512.FusedMultiplyAdd(u0, x, a2);
                b2 = Vector512.FusedMultiplyAdd(u1, x, b2);
                c2 = Vector512.FusedMultiplyAdd(u2, x, c2);
                d2 = Vector512.FusedMultiplyAdd(u3, x, d2);
                x = Vector512.Load(p3 + i);
                a3 = Vector512.FusedMultiplyAdd(u0, x, a3);
                b3 = Vector512.FusedMultiplyAdd(u1, x, b3);
                c3 = Vector512.FusedMultiplyAdd(u2, x, c3);
                d3 = Vector512.FusedMultiplyAdd(u3, x, d3);
            }
            result[0] = Tail(Vector512.Sum(a0), q0, p0, i, n);
            result[1] = Tail(Vector512.Sum(a1), q0, p1, i, n);
            result[2] = Tail(Vector512.Sum(a2), q0, p2, i, n);
            result[3] = Tail(Vector512.Sum(a3), q0, p3, i, n);
            result[4] = Tail(Vector512.Sum(b0), q1, p0, i, n);
            result[5] = Tail(Vector512.Sum(b1), q1, p1, i, n);
            result[6] = Tail(Vector512.Sum(b2), q1, p2, i, n);
            result[7] = Tail(Vector512.Sum(b3), q1, p3, i, n);
            result[8] = Tail(Vector512.Sum(c0), q2, p0, i, n);
            result[9] = Tail(Vector512.Sum(c1), q2, p1, i, n);
            result[10] = Tail(Vector512.Sum(c2), q2, p2, i, n);
            result[11] = Tail(Vector512.Sum(c3), q2, p3, i, n);
            result[12] = Tail(Vector512.Sum(d0), q3, p0, i, n);
            result[13] = Tail(Vector512.Sum(d1), q3, p1, i, n);
            result[14] = Tail(Vector512.Sum(d2), q3, p2, i, n);
            result[15] = Tail(Vector512.Sum(d3), q3, p3, i, n);
        }
    }

    /// <summary>The canonical order's end: the leftover columns [from, n) added to the lane sum in order, fused.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Tail(float sum, float* w, float* x, int from, int n)
    {
        for (var i = from; i < n; i++) sum = MathF.FusedMultiplyAdd(w[i], x[i], sum);
        return sum;
    }

    private static void CheckLengths(int n, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, ReadOnlySpan<float> d)
    {
        if (a.Length < n || b.Length < n || c.Length < n || d.Length < n) throw new ArgumentException("a tile's rows are shorter than its shared row");
    }

    private static void CheckLengths(int n, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, ReadOnlySpan<float> d, ReadOnlySpan<float> e)
    {
        CheckLengths(n, a, b, c, d);
        if (e.Length < n) throw new ArgumentException("a tile's rows are shorter than its shared row");
    }

    private static void CheckLengths(int n, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c) => CheckLengths(n, a, b, c, c);
}
