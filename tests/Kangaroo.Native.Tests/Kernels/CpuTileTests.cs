using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Kernels.Cpu;
using Kangaroo.Native.Kernels.Reference;
using Kangaroo.Native.Tests.Numerics;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>The <c>cpu</c> device's own tiles, below what <see cref="KernelTests"/> and
/// <see cref="QuantizedKernelTests"/> reach through the device: exact 16-bit widening, row-count
/// independence of every tile, each quantized type's AVX2 and AVX-512 conversions inside the tiles, and
/// the split of large products across cores, against <see cref="ReferenceDevice"/>.</summary>
public sealed class CpuTileTests
{
    [Fact]
    public void WidensEveryF16AndBf16BitPatternExactly()
    {
        var bits = Enumerable.Range(0, 1 << 16).Select(i => (ushort)i).ToArray();
        var widened = new float[bits.Length];
        HalfTiles.Widen<F16Widening>(bits, widened);
        for (var i = 0; i < bits.Length; i++)
        {
            var expected = Widening.F16(bits[i]);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(widened[i]) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(widened[i]),
                $"f16 0x{bits[i]:x4}: {widened[i]:R}, expected {expected:R}");
            var one = F16Widening.Widen(bits[i]); // the scalar path (tails, quantized blocks' scales)
            Assert.True(float.IsNaN(expected) ? float.IsNaN(one) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(one),
                $"f16 0x{bits[i]:x4} alone: {one:R}, expected {expected:R}");
        }
        var finite = bits.Where(b => (b & 0x7C00) != 0x7C00).ToArray();
        Assert.False(F16Widening.AnyNonFinite(finite));
        Assert.True(F16Widening.AnyNonFinite([.. finite[..100], (ushort)0xFC00]));
        HalfTiles.Widen<FiniteF16Widening>(finite, widened);
        for (var i = 0; i < finite.Length; i++)
            Assert.Equal(BitConverter.SingleToInt32Bits(Widening.F16(finite[i])), BitConverter.SingleToInt32Bits(widened[i]));
        HalfTiles.Widen<BF16Widening>(bits, widened);
        for (var i = 0; i < bits.Length; i++)
            Assert.Equal(bits[i] << 16, BitConverter.SingleToInt32Bits(widened[i]));
    }

    /// <summary>An F16 weight holding an infinity and a NaN takes the widening that looks for them: those
    /// rows come out infinite and NaN, the others as the reference computes them.</summary>
    [Fact]
    public void F16_weights_with_infinities_and_nans_keep_them()
    {
        const int outDim = 8, inDim = 64;
        var values = Random(outDim * inDim, seed: 31);
        values[1 * inDim + 5] = float.PositiveInfinity;
        values[6 * inDim + 40] = float.NaN;
        var (bytes, _) = Encode(values, ElementType.F16);
        var x = Random(inDim, seed: 32).Select(Math.Abs).ToArray();
        using var cpu = new CpuDevice();
        using var reference = new ReferenceDevice();
        float[] On(ComputeDevice d)
        {
            using var weight = d.UploadWeight(ElementType.F16, bytes, outDim, inDim);
            using var input = Tensor(d, x);
            using var output = d.Allocate(outDim);
            d.MatMul(input, weight, output, 1);
            return Read(d, output);
        }
        var (actual, expected) = (On(cpu), On(reference));
        for (var o = 0; o < outDim; o++)
        {
            if (o == 1) Assert.Equal(float.PositiveInfinity, actual[o]);
            else if (o == 6) Assert.True(float.IsNaN(actual[o]));
            else Assert.Equal(expected[o], actual[o], 1e-4f);
        }
    }

    /// <summary>Blocks of 2, 3, 7, 9 and 10 rows (tiles of 4 and short tiles of 1, 2 or 3: the 2x4 and
    /// 2x2 tiles) against one-row calls (the 4x1 decode tile), at widths around the vector widths.</summary>
    [Theory]
    [InlineData(ElementType.F32)]
    [InlineData(ElementType.F16)]
    [InlineData(ElementType.BF16)]
    public void MatMulBlocksAreBitIdenticalToSingleRows(ElementType type)
    {
        using var device = new CpuDevice();
        foreach (var (outDim, inDim) in new[] { (1, 1), (5, 3), (13, 8), (9, 17), (6, 24), (7, 37), (12, 64), (70, 1100) }) // the last spans two panels
        {
            var (bytes, _) = Encode(Random(outDim * inDim, seed: outDim * inDim), type);
            using var weight = device.UploadWeight(type, bytes, outDim, inDim);
            foreach (var rows in new[] { 2, 3, 7, 9, 10 })
            foreach (var accumulate in new[] { false, true })
                AssertBlockMatchesRows(device, weight, rows, accumulate, $"{type} [{outDim}x{inDim}] rows {rows} accumulate {accumulate}");
        }
    }

    /// <summary>Each quantized type's AVX2 and AVX-512 conversions give every sub-block's values
    /// a_j q + b_j exactly as the format defines them (<see cref="IBlockFormat.Dequantize"/>).</summary>
    [Theory, InstructionSetData("avx2"), InstructionSetData("avx512")]
    public void Block_types_convert_their_quants_exactly(string isa)
    {
        AssertConversions<Q8_0Blocks>(ElementType.Q8_0, isa);
        AssertConversions<Q4_0Blocks>(ElementType.Q4_0, isa);
        AssertConversions<Q4_1Blocks>(ElementType.Q4_1, isa);
        AssertConversions<Q5_0Blocks>(ElementType.Q5_0, isa);
        AssertConversions<Q5_1Blocks>(ElementType.Q5_1, isa);
        AssertConversions<Q2_KBlocks>(ElementType.Q2_K, isa);
        AssertConversions<Q3_KBlocks>(ElementType.Q3_K, isa);
        AssertConversions<Q4_KBlocks>(ElementType.Q4_K, isa);
        AssertConversions<Q5_KBlocks>(ElementType.Q5_K, isa);
        AssertConversions<Q6_KBlocks>(ElementType.Q6_K, isa);
    }

    /// <summary>The panel's dequantization (<see cref="BlockTiles.Dequantize{TBlocks}"/>, fused a_j q + b_j) gives
    /// every value exactly as the format defines it, and the decode tile equals the float tile on those
    /// values bit for bit: one canonical order whatever the weight type.</summary>
    [Fact]
    public void Quantized_tiles_compute_the_float_tiles_on_exact_values()
    {
        AssertExactTiles<Q8_0Blocks>(ElementType.Q8_0);
        AssertExactTiles<Q4_0Blocks>(ElementType.Q4_0);
        AssertExactTiles<Q4_1Blocks>(ElementType.Q4_1);
        AssertExactTiles<Q5_0Blocks>(ElementType.Q5_0);
        AssertExactTiles<Q5_1Blocks>(ElementType.Q5_1);
        AssertExactTiles<Q2_KBlocks>(ElementType.Q2_K);
        AssertExactTiles<Q3_KBlocks>(ElementType.Q3_K);
        AssertExactTiles<Q4_KBlocks>(ElementType.Q4_K);
        AssertExactTiles<Q5_KBlocks>(ElementType.Q5_K);
        AssertExactTiles<Q6_KBlocks>(ElementType.Q6_K);
    }

    private static void AssertExactTiles<TBlocks>(ElementType type) where TBlocks : IQuantizedBlocks
    {
        if (!BlockTiles.Supported) return;
        var cols = 3 * type.BlockLength();
        var (bytes, values) = QuantizedKernelTests.Blocks(type, 4, cols, seed: 21);
        var panel = new float[values.Length];
        BlockTiles.Dequantize<TBlocks>(bytes, panel);
        for (var i = 0; i < values.Length; i++)
            Assert.True(BitConverter.SingleToInt32Bits(values[i]) == BitConverter.SingleToInt32Bits(panel[i]) || values[i] == panel[i], $"{type} value {i}: {panel[i]:R}, expected {values[i]:R}");
        var x = Random(cols, seed: 22);
        var (tile, floats) = (new float[4], new float[4]);
        BlockTiles.Dot4x1<TBlocks>(bytes, (int)type.RowBytes(cols), x, tile);
        FloatTiles.Dot4(x, panel.AsSpan(0, cols), panel.AsSpan(cols, cols), panel.AsSpan(2 * cols, cols), panel.AsSpan(3 * cols, cols), floats);
        AssertIdentical(floats, tile, $"{type}: decode tile vs float tile on the dequantized rows");
        var xs = Random(4 * cols, seed: 23);
        var (tile4, floats4) = (new float[16], new float[16]);
        BlockTiles.Dot4x4<TBlocks>(bytes, (int)type.RowBytes(cols), xs.AsSpan(0, cols), xs.AsSpan(cols, cols), xs.AsSpan(2 * cols, cols), xs.AsSpan(3 * cols, cols), tile4);
        FloatTiles.Dot4x4(panel, xs.AsSpan(0, cols), xs.AsSpan(cols, cols), xs.AsSpan(2 * cols, cols), xs.AsSpan(3 * cols, cols), floats4);
        AssertIdentical(floats4, tile4, $"{type}: verification tile vs float tile on the dequantized rows");
    }

    private static unsafe void AssertConversions<TBlocks>(ElementType type, string isa) where TBlocks : IQuantizedBlocks
    {
        var (bytes, values) = QuantizedKernelTests.Blocks(type, 3, 3 * type.BlockLength(), seed: 11);
        Assert.Equal(type.BlockBytes(), TBlocks.BlockBytes);
        Assert.Equal(type.BlockLength(), TBlocks.BlockLength);
        fixed (byte* start = bytes)
        for (var b = 0; b < bytes.Length / TBlocks.BlockBytes; b++)
        for (var j = 0; j < TBlocks.BlockLength / TBlocks.SubLength; j++)
        {
            var block = start + b * TBlocks.BlockBytes;
            Vector512<float> low, high;
            if (isa == "avx2") TBlocks.QuantsAvx2(block, j, out low, out high);
            else TBlocks.QuantsAvx512(block, j, out low, out high);
            var (a, offset) = (TBlocks.Scale(block, j, F16Widening.Halves), TBlocks.Offset(block, j, F16Widening.Halves));
            for (var i = 0; i < TBlocks.SubLength; i++)
            {
                var expected = values[b * TBlocks.BlockLength + j * TBlocks.SubLength + i];
                var actual = a * (i < 16 ? low[i] : high[i - 16]) + offset;
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual) || expected == actual,
                    $"{type} {isa} block {b} sub-block {j} value {i}: {actual:R}, expected {expected:R}");
            }
        }
    }

    /// <summary>The tiles with each type's AVX2 conversion (run here by putting it in the AVX-512 slot) give
    /// the AVX-512 tiles' results bit for bit: after the conversion the arithmetic is the same.</summary>
    [Theory, InstructionSetData("avx512")]
    public void Avx2_and_avx512_tiles_agree_bit_for_bit(string isa)
    {
        Assert.Equal("avx512", isa);
        AssertTilesAgree<Q8_0Blocks, Avx2Conversion<Q8_0Blocks>>(ElementType.Q8_0);
        AssertTilesAgree<Q4_0Blocks, Avx2Conversion<Q4_0Blocks>>(ElementType.Q4_0);
        AssertTilesAgree<Q4_1Blocks, Avx2Conversion<Q4_1Blocks>>(ElementType.Q4_1);
        AssertTilesAgree<Q5_0Blocks, Avx2Conversion<Q5_0Blocks>>(ElementType.Q5_0);
        AssertTilesAgree<Q5_1Blocks, Avx2Conversion<Q5_1Blocks>>(ElementType.Q5_1);
        AssertTilesAgree<Q2_KBlocks, Avx2Conversion<Q2_KBlocks>>(ElementType.Q2_K);
        AssertTilesAgree<Q3_KBlocks, Avx2Conversion<Q3_KBlocks>>(ElementType.Q3_K);
        AssertTilesAgree<Q4_KBlocks, Avx2Conversion<Q4_KBlocks>>(ElementType.Q4_K);
        AssertTilesAgree<Q5_KBlocks, Avx2Conversion<Q5_KBlocks>>(ElementType.Q5_K);
        AssertTilesAgree<Q6_KBlocks, Avx2Conversion<Q6_KBlocks>>(ElementType.Q6_K);
    }

    private static void AssertTilesAgree<TBlocks, TOther>(ElementType type) where TBlocks : IQuantizedBlocks where TOther : IQuantizedBlocks
    {
        var cols = 5 * type.BlockLength();
        var (bytes, _) = QuantizedKernelTests.Blocks(type, 4, cols, seed: 12);
        var x = Random(4 * cols, seed: 13);
        var rowBytes = (int)type.RowBytes(cols);
        float[] Tiles<T>() where T : IQuantizedBlocks
        {
            var result = new float[4 + 4 * cols];
            BlockTiles.Dot4x1<T>(bytes, rowBytes, x.AsSpan(0, cols), result);
            BlockTiles.Dequantize<T>(bytes, result.AsSpan(4));
            return result;
        }
        AssertIdentical(Tiles<TBlocks>(), Tiles<TOther>(), $"{type}: AVX-512 vs AVX2 conversion");
    }

    /// <summary>Products large enough to be split over the cores (2^20 multiply-adds and more), with
    /// output counts that are not whole chunks, against the reference; blocks still equal one-row calls,
    /// and every thread count (<see cref="CpuDevice.Threads"/>: 1, 2, 3 and 7, more than this machine may
    /// have) gives the same bits.</summary>
    [Theory]
    [InlineData(ElementType.F32)]
    [InlineData(ElementType.F16)]
    [InlineData(ElementType.Q8_0)]
    [InlineData(ElementType.Q4_0)]
    [InlineData(ElementType.Q4_K)]
    [InlineData(ElementType.Q6_K)]
    public void MatMul_split_across_cores_matches_reference(ElementType type)
    {
        const int outDim = 1030, inDim = 1024;
        using var cpu = new CpuDevice();
        using var reference = new ReferenceDevice();
        var bytes = type.IsQuantized() ? QuantizedKernelTests.Blocks(type, outDim, inDim, seed: 16).Bytes : Encode(Random(outDim * inDim, seed: 16), type).Bytes;
        foreach (var rows in new[] { 1, 3 })
        {
            var x = Random(rows * inDim, seed: 17);
            float[] On(ComputeDevice d)
            {
                using var weight = d.UploadWeight(type, bytes, outDim, inDim);
                using var input = Tensor(d, x);
                using var output = d.Allocate(rows * outDim);
                d.MatMul(input, weight, output, rows);
                return Read(d, output);
            }
            var w = new float[outDim * inDim];
            ElementTypes.ToFloats(type, bytes, w);
            var offsets = type.IsQuantized() ? RandomBlocks.Offsets(type, bytes) : new float[w.Length];
            var bounds = new float[rows * outDim];
            for (var r = 0; r < rows; r++)
            for (var o = 0; o < outDim; o++)
            {
                var magnitude = 0.0;
                for (var i = 0; i < inDim; i++) magnitude += Math.Abs((double)x[r * inDim + i]) * (Math.Abs(w[o * inDim + i]) + 2 * Math.Abs(offsets[o * inDim + i]));
                bounds[r * outDim + o] = (float)(2 * (inDim + 4) * U * magnitude) + 1e-30f;
            }
            var split = On(cpu);
            AssertWithin(On(reference), split, bounds, $"MatMul {type} [{outDim}x{inDim}] rows {rows}");
            foreach (var threads in new[] { 1, 2, 3, 7 })
            {
                using var device = new CpuDevice(threads);
                Assert.Equal(threads, device.Threads);
                AssertIdentical(split, On(device), $"MatMul {type} [{outDim}x{inDim}] rows {rows} on {threads} threads vs {cpu.Threads}");
            }
        }
        using var cpuWeight = cpu.UploadWeight(type, bytes, outDim, inDim);
        AssertBlockMatchesRows(cpu, cpuWeight, 5, accumulate: true, $"MatMul {type} [{outDim}x{inDim}] split");
    }

    /// <summary>Attention over a block large enough to be split over the cores (2^18 multiply-adds and more)
    /// gives the bits of one thread and of one-row calls (which stay below the split).</summary>
    [Fact]
    public void Attention_split_across_cores_matches_one_thread_and_single_rows()
    {
        const int heads = 8, kvHeads = 2, headDim = 64, rows = 40, startPos = 100;
        var (qDim, kvDim) = (heads * headDim, kvHeads * headDim);
        var (qs, keys, values) = (Random(rows * qDim, seed: 51), Random((startPos + rows) * kvDim, seed: 52), Random((startPos + rows) * kvDim, seed: 53));
        float[] Attend(CpuDevice device, bool oneRowAtATime)
        {
            using var q = Tensor(device, qs);
            using var k = Tensor(device, keys);
            using var v = Tensor(device, values);
            using var output = device.Allocate(rows * qDim);
            if (!oneRowAtATime) device.Attention(q, k, v, output, BatchRows.Sequence(0, startPos, rows), heads, kvHeads, headDim, startPos + rows);
            else
                for (var r = 0; r < rows; r++)
                    device.Attention(q.Slice(r * qDim, qDim), k, v, output.Slice(r * qDim, qDim), BatchRows.Sequence(0, startPos + r, 1), heads, kvHeads, headDim, startPos + rows);
            return Read(device, output);
        }
        using var split = new CpuDevice(threads: 3);
        using var one = new CpuDevice(threads: 1);
        var expected = Attend(one, oneRowAtATime: false);
        AssertIdentical(expected, Attend(split, oneRowAtATime: false), "attention split over 3 threads vs 1");
        AssertIdentical(expected, Attend(split, oneRowAtATime: true), "attention block vs one-row calls");
    }

    /// <summary><typeparamref name="TBlocks"/> with its AVX2 conversion in the AVX-512 slot.</summary>
    private readonly struct Avx2Conversion<TBlocks> : IQuantizedBlocks where TBlocks : IQuantizedBlocks
    {
        public static int BlockLength => TBlocks.BlockLength;
        public static int BlockBytes => TBlocks.BlockBytes;
        public static int SubLength => TBlocks.SubLength;
        public static bool HasOffsets => TBlocks.HasOffsets;

        public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high) => TBlocks.QuantsAvx2(block, j, out low, out high);

        public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high) => TBlocks.QuantsAvx2(block, j, out low, out high);

        public static unsafe float Scale(byte* block, int j, float* halves) => TBlocks.Scale(block, j, halves);

        public static unsafe float Offset(byte* block, int j, float* halves) => TBlocks.Offset(block, j, halves);
    }
}

/// <summary>Theory data: the instruction set's name, skipped with a reason when this CPU lacks it.</summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = true)]
public sealed class InstructionSetDataAttribute : Xunit.Sdk.DataAttribute
{
    private readonly string _isa;

    public InstructionSetDataAttribute(string isa)
    {
        _isa = isa;
        var supported = isa == "avx2" ? BlockTiles.Supported : Avx512F.IsSupported;
        if (!supported) Skip = $"this CPU has no {isa}";
    }

    public override IEnumerable<object[]> GetData(System.Reflection.MethodInfo testMethod) => [[_isa]];
}
