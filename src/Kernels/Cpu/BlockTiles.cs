using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// Block-quantized rows (<see cref="IQuantizedBlocks"/>) dequantized in AVX-512 or AVX2 registers, exactly
/// to the values their format defines: into the decode tile's products, or into a panel of floats for the
/// block tiles.
///   math:  value i of sub-block j is fma(q_i, a_j, b_j), or q_i a_j for types without offsets (the integer
///          quants converted exactly; a_j q_i is exact for every type with offsets, so the fused form equals
///          the format's a_j q_i + b_j). The dot w . x is then <see cref="FloatTiles"/>' canonical order over
///          those values, 16 lanes at a time: so the decode tile, the panel and the scalar fallback
///          (<see cref="Numerics.Quantization.Dequantize"/> then the float tiles) agree bit for bit, and a
///          block of rows equals one-row calls.
///   tiles: <see cref="Dot4x1{TBlocks}"/> one input row x 4 weight rows (decode), prefetching the next 4
///          rows; <see cref="Dequantize{TBlocks}"/> rows into a panel for <see cref="FloatTiles.Dot4x4"/>.
///   bytes: the weight once, out * rowBytes (the file's bytes: Q8_0 34, Q4_0 18 per 32 values, Q4_K 144,
///          Q6_K 210 per 256, ...); x from cache; a panel is 4 bytes a value, written once and read from cache.
/// </summary>
internal static class BlockTiles
{
    /// <summary>Whether the tiles run here. Elsewhere quantized rows are dequantized into the panel by their
    /// format's definition, which gives the same values.</summary>
    public static bool Supported => Avx2.IsSupported && Fma.IsSupported;

    /// <summary>The decode tile: one input row x with four consecutive quantized rows (w holds 4 rows of
    /// <paramref name="rowBytes"/>; x.Length is a whole number of blocks), four accumulators.</summary>
    public static unsafe void Dot4x1<TBlocks>(ReadOnlySpan<byte> w, int rowBytes, ReadOnlySpan<float> x, Span<float> result) where TBlocks : IQuantizedBlocks
    {
        if (w.Length < 4 * rowBytes || x.Length != rowBytes / TBlocks.BlockBytes * TBlocks.BlockLength) throw new ArgumentException("four quantized rows and their input row disagree in length");
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
                    a0 = SubBlockDot<TBlocks>(block, j, half, xj, a0);
                    a1 = SubBlockDot<TBlocks>(block + rowBytes, j, half, xj, a1);
                    a2 = SubBlockDot<TBlocks>(block + 2 * rowBytes, j, half, xj, a2);
                    a3 = SubBlockDot<TBlocks>(block + 3 * rowBytes, j, half, xj, a3);
                }
            }
        }
        result[0] = Vector512.Sum(a0);
        result[1] = Vector512.Sum(a1);
        result[2] = Vector512.Sum(a2);
        result[3] = Vector512.Sum(a3);
    }

    /// <summary>The verification tile: four consecutive quantized rows with four input rows (result[4 * j + k] =
    /// w_j . x_k), each sub-block dequantized once in registers for the four; short tiles repeat their last
    /// input row. Blocks of up to 4 rows stream the weight once, at about the cost of the decode tile.</summary>
    public static unsafe void Dot4x4<TBlocks>(ReadOnlySpan<byte> w, int rowBytes, ReadOnlySpan<float> x0, ReadOnlySpan<float> x1, ReadOnlySpan<float> x2,
        ReadOnlySpan<float> x3, Span<float> result) where TBlocks : IQuantizedBlocks
    {
        var n = rowBytes / TBlocks.BlockBytes * TBlocks.BlockLength;
        if (w.Length < 4 * rowBytes || x0.Length != n || x1.Length != n || x2.Length != n || x3.Length != n) throw new ArgumentException("four quantized rows and their input rows disagree in length");
        var half = F16Widening.Halves; // before the accumulators exist: see F16Widening.Halves
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        fixed (byte* pw = w)
        fixed (float* p0 = x0, p1 = x1, p2 = x2, p3 = x3)
        {
            for (int offset = 0, column = 0; offset < rowBytes; offset += TBlocks.BlockBytes, column += TBlocks.BlockLength)
            {
                for (var row = 4; row < 8; row++) Sse.Prefetch0(pw + row * rowBytes + offset); // the next tile's rows
                var block = pw + offset;
                for (var j = 0; j < TBlocks.BlockLength / TBlocks.SubLength; j++)
                {
                    var c = column + j * TBlocks.SubLength;
                    var xs = new Inputs4(p0 + c, p1 + c, p2 + c, p3 + c, TBlocks.SubLength == 32);
                    SubBlockValues<TBlocks>(block, j, half, out var low, out var high);
                    Accumulate4.Add(low, high, xs, TBlocks.SubLength == 32, ref a00, ref a01, ref a02, ref a03);
                    SubBlockValues<TBlocks>(block + rowBytes, j, half, out low, out high);
                    Accumulate4.Add(low, high, xs, TBlocks.SubLength == 32, ref a10, ref a11, ref a12, ref a13);
                    SubBlockValues<TBlocks>(block + 2 * rowBytes, j, half, out low, out high);
                    Accumulate4.Add(low, high, xs, TBlocks.SubLength == 32, ref a20, ref a21, ref a22, ref a23);
                    SubBlockValues<TBlocks>(block + 3 * rowBytes, j, half, out low, out high);
                    Accumulate4.Add(low, high, xs, TBlocks.SubLength == 32, ref a30, ref a31, ref a32, ref a33);
                }
            }
        }
        Accumulate4.Sum(a00, a01, a02, a03, result);
        Accumulate4.Sum(a10, a11, a12, a13, result[4..]);
        Accumulate4.Sum(a20, a21, a22, a23, result[8..]);
        Accumulate4.Sum(a30, a31, a32, a33, result[12..]);
    }

    /// <summary>Quantized rows (whole blocks) to their exact float values, into <paramref name="values"/>;
    /// <paramref name="ahead"/>: bytes past each block to prefetch (0: the block itself, a no-op).</summary>
    public static unsafe void Dequantize<TBlocks>(ReadOnlySpan<byte> blocks, Span<float> values, int ahead = 0) where TBlocks : IQuantizedBlocks
    {
        var count = blocks.Length / TBlocks.BlockBytes;
        if (blocks.Length % TBlocks.BlockBytes != 0 || values.Length < count * TBlocks.BlockLength) throw new ArgumentException("quantized blocks and their values disagree in length");
        var half = F16Widening.Halves;
        fixed (byte* pw = blocks)
        fixed (float* pv = values)
        {
            for (var b = 0; b < count; b++)
            {
                var block = pw + b * TBlocks.BlockBytes;
                Sse.Prefetch0(block + ahead); // unconditional: a branch here makes the JIT spill the accumulators every step
                for (var j = 0; j < TBlocks.BlockLength / TBlocks.SubLength; j++)
                {
                    SubBlockValues<TBlocks>(block, j, half, out var low, out var high);
                    var v = pv + b * TBlocks.BlockLength + j * TBlocks.SubLength;
                    low.Store(v);
                    if (TBlocks.SubLength == 32) high.Store(v + 16);
                }
            }
        }
    }

    /// <summary>acc advanced over sub-block <paramref name="j"/> in the canonical order: its values times x,
    /// 16 lanes at a time, fused.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<float> SubBlockDot<TBlocks>(byte* block, int j, float* half, float* x, Vector512<float> acc) where TBlocks : IQuantizedBlocks
    {
        SubBlockValues<TBlocks>(block, j, half, out var low, out var high);
        acc = Vector512.FusedMultiplyAdd(low, Vector512.Load(x), acc);
        return TBlocks.SubLength == 32 ? Vector512.FusedMultiplyAdd(high, Vector512.Load(x + 16), acc) : acc;
    }

    /// <summary>Sub-block <paramref name="j"/>'s values, exactly (see the class comment): low holds values
    /// 0..15, high 16..31 (unused for 16-value sub-blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void SubBlockValues<TBlocks>(byte* block, int j, float* half, out Vector512<float> low, out Vector512<float> high) where TBlocks : IQuantizedBlocks
    {
        if (Avx512F.IsSupported) TBlocks.QuantsAvx512(block, j, out low, out high);
        else TBlocks.QuantsAvx2(block, j, out low, out high);
        var a = Vector512.Create(TBlocks.Scale(block, j, half));
        if (TBlocks.HasOffsets)
        {
            var b = Vector512.Create(TBlocks.Offset(block, j, half));
            low = Vector512.FusedMultiplyAdd(low, a, b);
            high = TBlocks.SubLength == 32 ? Vector512.FusedMultiplyAdd(high, a, b) : high;
        }
        else
        {
            low *= a;
            high = TBlocks.SubLength == 32 ? high * a : high;
        }
    }
}
