using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Dot-product tiles over block-quantized rows (<see cref="IQuantizedBlocks"/>), dequantized in AVX-512 or
/// AVX2 registers, never in memory.
///   math:  per sub-block j of a row, s = q . x over 16 lanes (lane i: q_i x_i, then q_(16+i) x_(16+i) added
///          fused; the integer quants converted exactly), acc = fma(s, a_j, acc), and for types with
///          offsets acc = fma(S, b_j, acc) with S the lane-wise sum of x over the sub-block; the dot is the
///          lane sum of acc at the end (<see cref="Vector512.Sum{T}(Vector512{T})"/>). A few more roundings
///          than dequantizing first, and a fraction of the vector work: the scale is applied once per
///          sub-block, not once per weight, which keeps the decode GEMV at memory speed. Every tile computes
///          each dot product this way, so blocks of rows agree with one-row calls bit for bit; with AVX-512
///          or without (a 16-lane vector is then two AVX2 registers) the arithmetic is the same.
///   tiles: <see cref="Dot4x1{TBlocks}"/> one input row x 4 weight rows (decode), prefetching the next 4
///          rows; <see cref="Dot1x4{TBlocks}"/> one weight row x 4 input rows (blocks), its quants
///          converted once for the four, prefetching the next row.
///   bytes: the weight once, out * rowBytes (the file's bytes: Q8_0 34, Q4_0 18 per 32 values, Q4_K 144,
///          Q6_K 210 per 256, ...); x from cache.
/// </summary>
internal static class BlockTiles
{
    /// <summary>Whether the tiles run here. Elsewhere quantized rows are dequantized into scratch by their
    /// format's definition and go through the float tiles.</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The decode tile: one input row x with four consecutive quantized rows (w holds 4 rows of
    /// <paramref name="rowBytes"/>; x.Length is a whole number of blocks), four accumulators.</summary>
    public static unsafe void Dot4x1<TBlocks>(ReadOnlySpan<byte> w, int rowBytes, ReadOnlySpan<float> x, Span<float> result) where TBlocks : IQuantizedBlocks
    {
        var half = F16Widening.Halves; // before the accumulators exist: see F16Widening.Halves
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        fixed (byte* pw = w)
        fixed (float* px = x)
        {
            for (int offset = 0, column = 0; offset < rowBytes; offset += TBlocks.BlockBytes, column += TBlocks.BlockLength)
            {
                for (var row = 4; row < 8; row++) Sse.Prefetch0(pw + row * rowBytes + offset); // the next tile's rows
                var block = pw + offset;
                for (var j = 0; j < TBlocks.BlockLength / TBlocks.SubLength; j++)
                {
                    var xj = px + column + j * TBlocks.SubLength;
                    var sum = TBlocks.HasOffsets ? SumOfX<TBlocks>(xj) : default;
                    a0 = SubBlockDot<TBlocks>(block, j, half, xj, sum, a0);
                    a1 = SubBlockDot<TBlocks>(block + rowBytes, j, half, xj, sum, a1);
                    a2 = SubBlockDot<TBlocks>(block + 2 * rowBytes, j, half, xj, sum, a2);
                    a3 = SubBlockDot<TBlocks>(block + 3 * rowBytes, j, half, xj, sum, a3);
                }
            }
        }
        result[0] = Vector512.Sum(a0);
        result[1] = Vector512.Sum(a1);
        result[2] = Vector512.Sum(a2);
        result[3] = Vector512.Sum(a3);
    }

    /// <summary>The block tile: one quantized row with four input rows (result[k] = w . x_k). Short tiles
    /// repeat their last input row. <paramref name="ahead"/>: bytes from this row to the one to prefetch.</summary>
    public static unsafe void Dot1x4<TBlocks>(ReadOnlySpan<byte> w, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2,
        ReadOnlySpan<float> x3, Span<float> result, int ahead) where TBlocks : IQuantizedBlocks
    {
        var n = x0.Length;
        if (w.Length != n / TBlocks.BlockLength * TBlocks.BlockBytes || x1.Length != n || x2.Length != n || x3.Length != n) throw new ArgumentException("a quantized row and its input rows disagree in length");
        var half = F16Widening.Halves; // before the accumulators exist: see F16Widening.Halves
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        fixed (byte* pw = w)
        fixed (float* p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            for (int offset = 0, column = 0; offset < w.Length; offset += TBlocks.BlockBytes, column += TBlocks.BlockLength)
            {
                Sse.Prefetch0(pw + offset + ahead);
                var block = pw + offset;
                for (var j = 0; j < TBlocks.BlockLength / TBlocks.SubLength; j++)
                {
                    Quants<TBlocks>(block, j, out var low, out var high);
                    var (a, b) = (TBlocks.Scale(block, j, half), TBlocks.Offset(block, j, half));
                    var c = column + j * TBlocks.SubLength;
                    a0 = SubBlockDot<TBlocks>(low, high, a, b, p0 + c, TBlocks.HasOffsets ? SumOfX<TBlocks>(p0 + c) : default, a0);
                    a1 = SubBlockDot<TBlocks>(low, high, a, b, p1 + c, TBlocks.HasOffsets ? SumOfX<TBlocks>(p1 + c) : default, a1);
                    a2 = SubBlockDot<TBlocks>(low, high, a, b, p2 + c, TBlocks.HasOffsets ? SumOfX<TBlocks>(p2 + c) : default, a2);
                    a3 = SubBlockDot<TBlocks>(low, high, a, b, p3 + c, TBlocks.HasOffsets ? SumOfX<TBlocks>(p3 + c) : default, a3);
                }
            }
        }
        result[0] = Vector512.Sum(a0);
        result[1] = Vector512.Sum(a1);
        result[2] = Vector512.Sum(a2);
        result[3] = Vector512.Sum(a3);
    }

    /// <summary>One sub-block's contribution (see the class comment): acc + s * a, then + S * b for types with offsets.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> SubBlockDot<TBlocks>(Vector512<float> low, Vector512<float> high, float a, float b, float* x,
        Vector512<float> sumOfX, Vector512<float> acc) where TBlocks : IQuantizedBlocks
    {
        var s = TBlocks.SubLength == 32
            ? Vector512.FusedMultiplyAdd(high, Vector512.Load(x + 16), low * Vector512.Load(x))
            : low * Vector512.Load(x);
        acc = Vector512.FusedMultiplyAdd(s, Vector512.Create(a), acc);
        return TBlocks.HasOffsets ? Vector512.FusedMultiplyAdd(sumOfX, Vector512.Create(b), acc) : acc;
    }

    /// <summary><see cref="SubBlockDot{TBlocks}(Vector512{float}, Vector512{float}, float, float, float*, Vector512{float}, Vector512{float})"/>
    /// of sub-block <paramref name="j"/> of the block at <paramref name="block"/>, its quants converted and
    /// its scale and offset read here.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> SubBlockDot<TBlocks>(byte* block, int j, float* half, float* x, Vector512<float> sumOfX, Vector512<float> acc)
        where TBlocks : IQuantizedBlocks
    {
        Quants<TBlocks>(block, j, out var low, out var high);
        return SubBlockDot<TBlocks>(low, high, TBlocks.Scale(block, j, half), TBlocks.Offset(block, j, half), x, sumOfX, acc);
    }

    /// <summary>The lane-wise sum of x over a sub-block: S, whose lane sum is the sub-block's sum of x.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> SumOfX<TBlocks>(float* x) where TBlocks : IQuantizedBlocks =>
        TBlocks.SubLength == 32 ? Vector512.Load(x) + Vector512.Load(x + 16) : Vector512.Load(x);

    /// <summary>A sub-block's quants as floats, exactly, by the type's AVX-512 conversion where that runs,
    /// else by its AVX2 one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Quants<TBlocks>(byte* block, int j, out Vector512<float> low, out Vector512<float> high) where TBlocks : IQuantizedBlocks
    {
        if (Avx512F.IsSupported) TBlocks.QuantsAvx512(block, j, out low, out high);
        else TBlocks.QuantsAvx2(block, j, out low, out high);
    }
}
