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
///          input rows (blocks; 16 accumulators from 8 loads a step). A short tile repeats its last row and
///          ignores its results.
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

    /// <summary>Dots of four consecutive weight rows (w holds 4 rows of x0.Length) with four input rows
    /// (result[4 * j + k] = w_j . x_k), each in the canonical order: the block tile, 16 accumulators from
    /// 4 weight and 4 input loads a step.</summary>
    public static unsafe void Dot4x4(ReadOnlySpan<float> w, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3,
        Span<float> result)
    {
        var n = x0.Length;
        if (w.Length < 4 * n) throw new ArgumentException("a 4x4 tile needs four weight rows");
        CheckLengths(n, x1, x2, x3);
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        fixed (float* q0 = w, p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            float* q1 = q0 + n, q2 = q0 + 2 * n, q3 = q0 + 3 * n;
            var i = 0;
            for (; i + Lanes <= n; i += Lanes)
            {
                var xs = new Inputs4(p0 + i, p1 + i, p2 + i, p3 + i, both: false);
                Accumulate4.Add(Vector512.Load(q0 + i), default, xs, both: false, ref a00, ref a01, ref a02, ref a03);
                Accumulate4.Add(Vector512.Load(q1 + i), default, xs, both: false, ref a10, ref a11, ref a12, ref a13);
                Accumulate4.Add(Vector512.Load(q2 + i), default, xs, both: false, ref a20, ref a21, ref a22, ref a23);
                Accumulate4.Add(Vector512.Load(q3 + i), default, xs, both: false, ref a30, ref a31, ref a32, ref a33);
            }
            Accumulate4.Sum(a00, a01, a02, a03, result);
            Accumulate4.Sum(a10, a11, a12, a13, result[4..]);
            Accumulate4.Sum(a20, a21, a22, a23, result[8..]);
            Accumulate4.Sum(a30, a31, a32, a33, result[12..]);
            if (i == n) return;
            float*[] rows = [q0, q1, q2, q3];
            float*[] inputs = [p0, p1, p2, p3];
            for (var j = 0; j < 4; j++)
            for (var k = 0; k < 4; k++)
                result[4 * j + k] = Tail(result[4 * j + k], rows[j], inputs[k], i, n);
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

    private static void CheckLengths(int n, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c) => CheckLengths(n, a, b, c, c);
}

/// <summary>16 values of each of four input rows, and for 32-value steps the next 16 (<see cref="High0"/>...).</summary>
internal readonly unsafe struct Inputs4
{
    public readonly Vector512<float> Low0, Low1, Low2, Low3, High0, High1, High2, High3;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Inputs4(float* x0, float* x1, float* x2, float* x3, bool both)
    {
        (Low0, Low1, Low2, Low3) = (Vector512.Load(x0), Vector512.Load(x1), Vector512.Load(x2), Vector512.Load(x3));
        if (both) (High0, High1, High2, High3) = (Vector512.Load(x0 + 16), Vector512.Load(x1 + 16), Vector512.Load(x2 + 16), Vector512.Load(x3 + 16));
    }
}

/// <summary>One weight row's dots with four input rows, advanced in the canonical order. Accumulators are
/// the caller's locals passed by reference: inlined, they stay in registers (a struct holding them does not).</summary>
internal static class Accumulate4
{
    /// <summary>Adds low . x (lanes 0-15 of the step), then, for 32-value steps, high . x (16-31), fused.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Add(Vector512<float> low, Vector512<float> high, in Inputs4 x, bool both,
        ref Vector512<float> a0, ref Vector512<float> a1, ref Vector512<float> a2, ref Vector512<float> a3)
    {
        a0 = Vector512.FusedMultiplyAdd(low, x.Low0, a0);
        a1 = Vector512.FusedMultiplyAdd(low, x.Low1, a1);
        a2 = Vector512.FusedMultiplyAdd(low, x.Low2, a2);
        a3 = Vector512.FusedMultiplyAdd(low, x.Low3, a3);
        if (!both) return;
        a0 = Vector512.FusedMultiplyAdd(high, x.High0, a0);
        a1 = Vector512.FusedMultiplyAdd(high, x.High1, a1);
        a2 = Vector512.FusedMultiplyAdd(high, x.High2, a2);
        a3 = Vector512.FusedMultiplyAdd(high, x.High3, a3);
    }

    /// <summary>The four lane sums into result[0..3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Sum(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3, Span<float> result)
    {
        result[0] = Vector512.Sum(a0);
        result[1] = Vector512.Sum(a1);
        result[2] = Vector512.Sum(a2);
        result[3] = Vector512.Sum(a3);
    }
}
