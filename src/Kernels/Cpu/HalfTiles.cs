using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// 16-bit weights (f16, bf16) to float32, exactly, in registers: the tile over 16-bit rows.
///   math:  <see cref="Dot4x1{TWidening}"/>: w_j . x for 4 consecutive 16-bit rows, each widened in
///          registers and summed in <see cref="FloatTiles"/>' canonical order, so it equals widening the
///          rows first and using <see cref="FloatTiles.Dot4"/>; <see cref="Widen{TWidening}"/> widens rows
///          into scratch for the block tiles.
///   tile:  1 input row x 4 weight rows (decode's GEMV); one 16-bit vector covers two float vectors.
///   bytes: 2 * out * in of weights read once (prefetched a tile ahead), x from cache, 4 * out written.
/// </summary>
internal static class HalfTiles
{
    private static int Width => Vector<float>.Count;

    /// <summary>16-bit weight patterns to float32, exactly, with <typeparamref name="TWidening"/>
    /// (<see cref="F16Widening"/> or <see cref="BF16Widening"/>).</summary>
    public static void Widen<TWidening>(ReadOnlySpan<ushort> source, Span<float> destination, int ahead = 0) where TWidening : IHalfWidening
    {
        var vs = MemoryMarshal.Cast<ushort, Vector<ushort>>(source);
        var vd = MemoryMarshal.Cast<float, Vector<float>>(destination[..source.Length]);
        for (var i = 0; i < vs.Length; i++)
        {
            if (ahead > 0) FloatTiles.Prefetch(source, i * Vector<ushort>.Count + ahead);
            TWidening.Widen(vs[i], out vd[2 * i], out vd[2 * i + 1]);
        }
        for (var i = vs.Length * Vector<ushort>.Count; i < source.Length; i++) destination[i] = TWidening.Widen(source[i]);
    }

    /// <summary><see cref="FloatTiles.Dot4"/> of one input row x with four consecutive rows of 16-bit weights (w holds 4 * x.Length
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
                for (var j = 0; j < 4; j++) FloatTiles.Prefetch(w, j * n + k * Vector<ushort>.Count + ahead);
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

    private static Vector<float> WidenLanes<TWidening>(ReadOnlySpan<ushort> bits, Span<float> lanes) where TWidening : IHalfWidening
    {
        for (var i = 0; i < lanes.Length; i++) lanes[i] = TWidening.Widen(bits[i]);
        return new Vector<float>(lanes);
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
    /// select that runs only when a vector holds one. Sign extension leaves one shift to do, where a
    /// zero-extended pattern would need two (h &lt;&lt; 16 &gt;&gt; 3).</summary>
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
