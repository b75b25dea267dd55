using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Dot-product tiles over float32 rows, with <see cref="Vector{T}"/> (AVX2 on x64, NEON on Arm64).
///   math:  w_j . x_k for the rows of the tile, each in THE canonical order: one vector accumulator over
///          the full vectors in column order (fused multiply-add), then <see cref="Vector.Sum{T}(Vector{T})"/>,
///          then the leftover columns in order (fused). Tiles only decide which dot products run side by
///          side, so any tiling of a block gives bit for bit the results of one-row calls.
///   tiles: <see cref="Dot4"/> 1 x 4 (decode: one input row against 4 weight rows; attention: one query
///          against 4 keys), <see cref="Dot2x4"/> 2 weight rows x 4 input rows (blocks), <see cref="Dot2x2"/>
///          for a block's last one or two rows. A short tile repeats its last row and ignores its results.
///   bytes: the weight once per call, 4 * out * in (a block tile's pair of weight rows is re-read from L1
///          for each tile of 4 input rows), input rows from cache, 4 * rows * out written. Weight tiles
///          prefetch the next tile's rows (<c>ahead</c> elements on) while they stream, which the hardware
///          prefetchers do not do for the block tile; hints change no result.
/// </summary>
internal static class FloatTiles
{
    private static int Width => Vector<float>.Count;

    /// <summary>Asks the cache for the line holding element <paramref name="index"/> of the memory
    /// that starts at <paramref name="data"/>; the index may lie past the span (the next tile's rows):
    /// a prefetch never faults and reads nothing into the program. No-op where x86 prefetch is absent.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void Prefetch<T>(ReadOnlySpan<T> data, int index) where T : unmanaged
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
}
