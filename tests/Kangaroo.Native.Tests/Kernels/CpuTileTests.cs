using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Kernels.Cpu;
using Kangaroo.Native.Kernels.Reference;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>The <c>cpu</c> device's own tiles, below what <see cref="KernelTests"/> and
/// <see cref="QuantizedKernelTests"/> reach through the device: exact 16-bit widening, row-count
/// independence of every tile, each quantized type's AVX2 and AVX-512 conversions inside the tiles,
/// the sub-block path with offsets (a test type, ahead of the K-quants that will use it), and the split
/// of large products across cores, against <see cref="ReferenceDevice"/>.</summary>
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
        HalfTiles.Widen<BF16Widening>(bits, widened);
        for (var i = 0; i < bits.Length; i++)
            Assert.Equal(bits[i] << 16, BitConverter.SingleToInt32Bits(widened[i]));
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
        foreach (var (outDim, inDim) in new[] { (1, 1), (5, 3), (13, 8), (9, 17), (6, 24), (7, 37), (12, 64) })
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
    }

    private static unsafe void AssertConversions<TBlocks>(ElementType type, string isa) where TBlocks : IQuantizedBlocks
    {
        var (bytes, values) = QuantizedKernelTests.Blocks(type, 3, 96, seed: 11);
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
    }

    private static void AssertTilesAgree<TBlocks, TOther>(ElementType type) where TBlocks : IQuantizedBlocks where TOther : IQuantizedBlocks
    {
        const int cols = 160;
        var (bytes, _) = QuantizedKernelTests.Blocks(type, 4, cols, seed: 12);
        var x = Random(4 * cols, seed: 13);
        var rowBytes = (int)type.RowBytes(cols);
        float[] Tiles<T>() where T : IQuantizedBlocks
        {
            var result = new float[8];
            BlockTiles.Dot4x1<T>(bytes, rowBytes, x.AsSpan(0, cols), result);
            BlockTiles.Dot1x4<T>(bytes.AsSpan(0, rowBytes), x.AsSpan(0, cols), x.AsSpan(cols, cols), x.AsSpan(2 * cols, cols), x.AsSpan(3 * cols, cols), result.AsSpan(4), rowBytes);
            return result;
        }
        AssertIdentical(Tiles<TBlocks>(), Tiles<TOther>(), $"{type}: AVX-512 vs AVX2 conversion");
    }

    /// <summary>The sub-block path of the tiles that no shipped type takes yet: 16-value sub-blocks with
    /// offsets (<see cref="OffsetBlocks"/>). Both tiles agree bit for bit and are within the bound of a
    /// float32 reordering of the exact dot product.</summary>
    [Theory, InstructionSetData("avx2")]
    public void Sub_blocks_with_offsets_match_their_values(string isa)
    {
        Assert.Equal("avx2", isa);
        const int cols = 96;
        var (bytes, w) = OffsetBlocks.Random(4, cols, seed: 14);
        var x = Random(4 * cols, seed: 15);
        var decode = new float[4];
        BlockTiles.Dot4x1<OffsetBlocks>(bytes, cols / 32 * OffsetBlocks.BlockBytes, x.AsSpan(0, cols), decode);
        for (var row = 0; row < 4; row++)
        {
            var block = new float[4];
            BlockTiles.Dot1x4<OffsetBlocks>(bytes.AsSpan(row * cols / 32 * OffsetBlocks.BlockBytes, cols / 32 * OffsetBlocks.BlockBytes),
                x.AsSpan(0, cols), x.AsSpan(cols, cols), x.AsSpan(2 * cols, cols), x.AsSpan(3 * cols, cols), block, ahead: 0);
            Assert.Equal(BitConverter.SingleToInt32Bits(decode[row]), BitConverter.SingleToInt32Bits(block[0]));
            for (var k = 0; k < 4; k++)
            {
                double exact = 0, magnitude = 0;
                for (var i = 0; i < cols; i++)
                {
                    exact += (double)w[row * cols + i] * x[k * cols + i];
                    magnitude += Math.Abs((double)w[row * cols + i] * x[k * cols + i]);
                }
                Assert.True(Math.Abs(block[k] - exact) <= 2 * (cols + 8) * U * magnitude, $"row {row} input {k}: {block[k]:R} vs {exact:R}");
            }
        }
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
            var bounds = new float[rows * outDim];
            for (var r = 0; r < rows; r++)
            for (var o = 0; o < outDim; o++)
            {
                var magnitude = 0.0;
                for (var i = 0; i < inDim; i++) magnitude += Math.Abs((double)x[r * inDim + i] * w[o * inDim + i]);
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

    /// <summary>A test format with the shape of the K-quants: blocks of 32 values as two sub-blocks of 16,
    /// each with an f16 scale a_j and offset b_j ([a0 b0 a1 b1] then 32 int8 quants); value = a_j q + b_j.</summary>
    private readonly struct OffsetBlocks : IQuantizedBlocks
    {
        public static int BlockLength => 32;
        public static int BlockBytes => 8 + 32;
        public static int SubLength => 16;
        public static bool HasOffsets => true;

        public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
        {
            low = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)block + 8 + 16 * j)));
            high = default;
        }

        public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
        {
            var q = (sbyte*)block + 8 + 16 * j;
            low = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q)), Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 8)));
            high = default;
        }

        public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)(block + 4 * j)];

        public static unsafe float Offset(byte* block, int j, float* halves) => halves[*(ushort*)(block + 4 * j + 2)];

        /// <summary>Random blocks for a [rows, cols] weight, and their values.</summary>
        public static (byte[] Bytes, float[] Values) Random(int rows, int cols, int seed)
        {
            var random = new Random(seed);
            var bytes = new byte[rows * cols / 32 * BlockBytes];
            random.NextBytes(bytes);
            var values = new float[rows * cols];
            for (var b = 0; b < bytes.Length / BlockBytes; b++)
            {
                var block = bytes.AsSpan(b * BlockBytes, BlockBytes);
                for (var j = 0; j < 2; j++)
                {
                    var (a, offset) = ((Half)(random.NextSingle() / 64), (Half)(random.NextSingle() - 0.5f));
                    MemoryMarshal.Write(block[(4 * j)..], a);
                    MemoryMarshal.Write(block[(4 * j + 2)..], offset);
                    for (var i = 0; i < 16; i++) values[b * 32 + 16 * j + i] = (float)a * (sbyte)block[8 + 16 * j + i] + (float)offset;
                }
            }
            return (bytes, values);
        }
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
