using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// 16-bit weights (f16, bf16) to float32, exactly, in registers: the tile over 16-bit rows.
///   math:  <see cref="Dot4x1{TWidening}"/>: w_j . x for 4 consecutive 16-bit rows, each widened in
///          registers and summed in <see cref="FloatTiles"/>' canonical order, so it equals widening the
///          rows first and using <see cref="FloatTiles.Dot4"/>; <see cref="Widen{TWidening}"/> widens rows
///          into a panel for the block tiles.
///   tile:  1 input row x 4 weight rows (decode's GEMV); one 32-value step widens 64 bytes of each row
///          into two 16-lane vectors.
///   bytes: 2 * out * in of weights read once (prefetched a tile ahead), x from cache, 4 * out written.
/// </summary>
internal static class HalfTiles
{
    private const int Step = 32; // values of one Vector512<ushort>

    /// <summary>16-bit weight patterns to float32, exactly, with <typeparamref name="TWidening"/>.</summary>
    public static unsafe void Widen<TWidening>(ReadOnlySpan<ushort> source, Span<float> destination, int ahead = 0) where TWidening : IHalfWidening
    {
        var n = source.Length;
        if (destination.Length < n) throw new ArgumentException("the destination is shorter than the source");
        fixed (ushort* ps = source)
        fixed (float* pd = destination)
        {
            var i = 0;
            for (; i + Step <= n; i += Step)
            {
                FloatTiles.Prefetch(ps + i + ahead);
                TWidening.Widen(Vector512.Load(ps + i), out var low, out var high);
                low.Store(pd + i);
                high.Store(pd + i + Step / 2);
            }
            for (; i < n; i++) pd[i] = TWidening.Widen(ps[i]);
        }
    }

    /// <summary><see cref="FloatTiles.Dot4"/> of one input row x with four consecutive rows of 16-bit weights (w holds 4 * x.Length
    /// patterns), widened in registers: the same products summed in the same order as widening the
    /// rows first, without writing and re-reading a widened copy (decode's GEMV on f16/bf16 models).</summary>
    public static unsafe void Dot4x1<TWidening>(ReadOnlySpan<ushort> w, ReadOnlySpan<float> x, Span<float> result, int ahead = 0) where TWidening : IHalfWidening
    {
        var n = x.Length;
        if (w.Length < 4 * n) throw new ArgumentException("a 4x1 tile needs four weight rows");
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        fixed (ushort* h0 = w)
        fixed (float* px = x)
        {
            ushort* h1 = h0 + n, h2 = h0 + 2 * n, h3 = h0 + 3 * n;
            var i = 0;
            for (; i + Step <= n; i += Step) // one accumulator per row over 16-lane chunks in column order
            {
                FloatTiles.Prefetch(h0 + i + ahead);
                FloatTiles.Prefetch(h1 + i + ahead);
                FloatTiles.Prefetch(h2 + i + ahead);
                FloatTiles.Prefetch(h3 + i + ahead);
                var (xl, xh) = (Vector512.Load(px + i), Vector512.Load(px + i + Step / 2));
                TWidening.Widen(Vector512.Load(h0 + i), out var l, out var h);
                a0 = Vector512.FusedMultiplyAdd(h, xh, Vector512.FusedMultiplyAdd(l, xl, a0));
                TWidening.Widen(Vector512.Load(h1 + i), out l, out h);
                a1 = Vector512.FusedMultiplyAdd(h, xh, Vector512.FusedMultiplyAdd(l, xl, a1));
                TWidening.Widen(Vector512.Load(h2 + i), out l, out h);
                a2 = Vector512.FusedMultiplyAdd(h, xh, Vector512.FusedMultiplyAdd(l, xl, a2));
                TWidening.Widen(Vector512.Load(h3 + i), out l, out h);
                a3 = Vector512.FusedMultiplyAdd(h, xh, Vector512.FusedMultiplyAdd(l, xl, a3));
            }
            if (i + Step / 2 <= n) // one 16-lane chunk left
            {
                var xl = Vector512.Load(px + i);
                a0 = Vector512.FusedMultiplyAdd(WidenChunk<TWidening>(h0 + i), xl, a0);
                a1 = Vector512.FusedMultiplyAdd(WidenChunk<TWidening>(h1 + i), xl, a1);
                a2 = Vector512.FusedMultiplyAdd(WidenChunk<TWidening>(h2 + i), xl, a2);
                a3 = Vector512.FusedMultiplyAdd(WidenChunk<TWidening>(h3 + i), xl, a3);
                i += Step / 2;
            }
            result[0] = Tail<TWidening>(Vector512.Sum(a0), h0, px, i, n);
            result[1] = Tail<TWidening>(Vector512.Sum(a1), h1, px, i, n);
            result[2] = Tail<TWidening>(Vector512.Sum(a2), h2, px, i, n);
            result[3] = Tail<TWidening>(Vector512.Sum(a3), h3, px, i, n);
        }
    }

    /// <summary>Four consecutive rows of 16-bit weights (w holds 4 * x0.Length patterns) with four input rows
    /// (result[4 * j + k] = w_j . x_k), each row widened once in registers for the four, in the canonical
    /// order: the verification tile, which streams the weight once. Short tiles repeat their last input row.</summary>
    public static unsafe void Dot4x4<TWidening>(ReadOnlySpan<ushort> w, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2, ReadOnlySpan<float> x3,
        Span<float> result, int ahead = 0) where TWidening : IHalfWidening
    {
        var n = x0.Length;
        if (w.Length < 4 * n || x1.Length < n || x2.Length < n || x3.Length < n) throw new ArgumentException("a 4x4 tile needs four weight rows and four input rows");
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        fixed (ushort* h0 = w)
        fixed (float* p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            ushort* h1 = h0 + n, h2 = h0 + 2 * n, h3 = h0 + 3 * n;
            var i = 0;
            for (; i + Step <= n; i += Step)
            {
                FloatTiles.Prefetch(h0 + i + ahead);
                FloatTiles.Prefetch(h1 + i + ahead);
                FloatTiles.Prefetch(h2 + i + ahead);
                FloatTiles.Prefetch(h3 + i + ahead);
                var xs = new Inputs4(p0 + i, p1 + i, p2 + i, p3 + i, both: true);
                TWidening.Widen(Vector512.Load(h0 + i), out var l, out var h);
                Accumulate4.Add(l, h, xs, both: true, ref a00, ref a01, ref a02, ref a03);
                TWidening.Widen(Vector512.Load(h1 + i), out l, out h);
                Accumulate4.Add(l, h, xs, both: true, ref a10, ref a11, ref a12, ref a13);
                TWidening.Widen(Vector512.Load(h2 + i), out l, out h);
                Accumulate4.Add(l, h, xs, both: true, ref a20, ref a21, ref a22, ref a23);
                TWidening.Widen(Vector512.Load(h3 + i), out l, out h);
                Accumulate4.Add(l, h, xs, both: true, ref a30, ref a31, ref a32, ref a33);
            }
            if (i + Step / 2 <= n) // one 16-lane chunk left
            {
                var xs = new Inputs4(p0 + i, p1 + i, p2 + i, p3 + i, both: false);
                Accumulate4.Add(WidenChunk<TWidening>(h0 + i), default, xs, both: false, ref a00, ref a01, ref a02, ref a03);
                Accumulate4.Add(WidenChunk<TWidening>(h1 + i), default, xs, both: false, ref a10, ref a11, ref a12, ref a13);
                Accumulate4.Add(WidenChunk<TWidening>(h2 + i), default, xs, both: false, ref a20, ref a21, ref a22, ref a23);
                Accumulate4.Add(WidenChunk<TWidening>(h3 + i), default, xs, both: false, ref a30, ref a31, ref a32, ref a33);
                i += Step / 2;
            }
            Accumulate4.Sum(a00, a01, a02, a03, result);
            Accumulate4.Sum(a10, a11, a12, a13, result[4..]);
            Accumulate4.Sum(a20, a21, a22, a23, result[8..]);
            Accumulate4.Sum(a30, a31, a32, a33, result[12..]);
            if (i < n)
            {
                ushort*[] rows = [h0, h1, h2, h3];
                float*[] inputs = [p0, p1, p2, p3];
                for (var j = 0; j < 4; j++)
                for (var k = 0; k < 4; k++)
                    result[4 * j + k] = Tail<TWidening>(result[4 * j + k], rows[j], inputs[k], i, n);
            }
        }
    }

    /// <summary>16 patterns widened (the low half of a 32-lane widening of them twice over), inline: a call
    /// here would make the JIT keep the tile's accumulators on the stack.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> WidenChunk<TWidening>(ushort* bits) where TWidening : IHalfWidening
    {
        var half = Vector256.Load(bits);
        TWidening.Widen(Vector512.Create(half, half), out var low, out _);
        return low;
    }

    private static unsafe float Tail<TWidening>(float sum, ushort* w, float* x, int from, int n) where TWidening : IHalfWidening
    {
        for (var i = from; i < n; i++) sum = MathF.FusedMultiplyAdd(TWidening.Widen(w[i]), x[i], sum);
        return sum;
    }
}

/// <summary>An exact widening of 16-bit weight patterns to float32, 32 at a time or one value.</summary>
internal interface IHalfWidening
{
    /// <summary>The 32 lanes of <paramref name="bits"/> as two 16-lane float vectors, low lanes first.</summary>
    static abstract void Widen(Vector512<ushort> bits, out Vector512<float> low, out Vector512<float> high);

    static abstract float Widen(ushort bits);
}

/// <summary>IEEE binary16 (subnormals, infinities and NaN payloads included).</summary>
internal readonly struct F16Widening : IHalfWidening
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector512<ushort> bits, out Vector512<float> low, out Vector512<float> high)
    {
        var (l, h) = Vector512.Widen(bits.AsInt16()); // sign-extending
        (low, high) = (Widen(l), Widen(h));
    }

    /// <summary>One half, looked up in a table of all 65,536 patterns (256 KB, built once with the exact
    /// <see cref="Half"/> conversion): a load and no branch. What tails and every quantized block's scale
    /// are widened with; a few dozen kilobytes of it are hot, since a model's scales span few exponents.
    /// For one value the vector path's bit trick costs more than a quantized block's other arithmetic.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Widen(ushort bits) => Halves[bits];

    private static readonly float[] Table = BuildTable(); // keeps the pinned table alive

    /// <summary>Every half as a float, indexed by its bit pattern, in memory that never moves. A tile reads
    /// this once, before its accumulators exist: the JIT guards the read with a class-initialisation
    /// check whose slow path is a call, and vector locals live across that call stay in memory for the
    /// whole loop.</summary>
    public static readonly unsafe float* Halves = (float*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(Table));

    private static float[] BuildTable()
    {
        var table = GC.AllocateUninitializedArray<float>(1 << 16, pinned: true);
        for (var bits = 0; bits < table.Length; bits++) table[bits] = Widening.F16((ushort)bits);
        return table;
    }

    /// <summary>Half to float on 32-bit lanes holding the 16-bit pattern sign-extended. h &lt;&lt; 13 puts
    /// sign, exponent and mantissa in a float's places (the sign's copies land in bits 30..28, which the
    /// mask clears); multiplying by 2^112 rebiases the exponent from 15 to 127, and a half subnormal
    /// becomes a float subnormal that the product renormalises exactly. Exponent 31 (infinity, NaN) is
    /// the only case whose product reaches 2^16; those lanes take the float maximum exponent instead, a
    /// select that runs only when a vector holds one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(Vector512<int> h)
    {
        var value = WidenFinite(h);
        if (Vector512.GreaterThanOrEqualAny(Vector512.Abs(value), Vector512.Create(65536f)))
            value = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(Vector512.Abs(value), Vector512.Create(65536f)), (Shifted(h) | Vector512.Create(0x7F800000)).AsSingle(), value);
        return value;
    }

    /// <summary>The same for lanes whose exponent is not 31: no infinity or NaN to look for.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> WidenFinite(Vector512<int> h) => Shifted(h).AsSingle() * Vector512.Create(5.192296858534828e+33f); // 2^112

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Shifted(Vector512<int> h) => (h << 13) & Vector512.Create(unchecked((int)0x8FFFE000));

    /// <summary>Whether any pattern is an infinity or a NaN (exponent 31): only then do rows need
    /// <see cref="F16Widening"/> rather than <see cref="FiniteF16Widening"/>.</summary>
    public static bool AnyNonFinite(ReadOnlySpan<ushort> bits)
    {
        var vectors = MemoryMarshal.Cast<ushort, Vector512<ushort>>(bits);
        var mask = Vector512.Create((ushort)0x7C00);
        foreach (var v in vectors)
            if (Vector512.EqualsAny(v & mask, mask)) return true;
        for (var i = vectors.Length * Vector512<ushort>.Count; i < bits.Length; i++)
            if ((bits[i] & 0x7C00) == 0x7C00) return true;
        return false;
    }
}

/// <summary>IEEE binary16 for rows that hold no infinity or NaN (<see cref="F16Widening.AnyNonFinite"/> is
/// false), exactly: the widening without the search for exponent 31, about a third less work a vector.</summary>
internal readonly struct FiniteF16Widening : IHalfWidening
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector512<ushort> bits, out Vector512<float> low, out Vector512<float> high)
    {
        var (l, h) = Vector512.Widen(bits.AsInt16()); // sign-extending
        (low, high) = (F16Widening.WidenFinite(l), F16Widening.WidenFinite(h));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Widen(ushort bits) => F16Widening.Widen(bits);
}

/// <summary>bfloat16: the upper 16 bits of a float32.</summary>
internal readonly struct BF16Widening : IHalfWidening
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Widen(Vector512<ushort> bits, out Vector512<float> low, out Vector512<float> high)
    {
        var (l, h) = Vector512.Widen(bits);
        (low, high) = ((l << 16).AsSingle(), (h << 16).AsSingle());
    }

    public static float Widen(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);
}
