using System.Runtime.InteropServices;
using Kangaroo.Native.Kernels;
using Kangaroo.Native.Kernels.Reference;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>The <c>cpu</c> device's own vectorised loops: exact 16-bit widening and row-count
/// independence of the tiled matrix product at shapes that exercise every tile and tail.</summary>
public sealed class ReferenceDeviceTests
{
    [Fact]
    public void WidensEveryF16AndBf16BitPatternExactly()
    {
        var bits = Enumerable.Range(0, 1 << 16).Select(i => (ushort)i).ToArray();
        var widened = new float[bits.Length];
        ManagedKernels.Widen<F16Widening>(bits, widened);
        for (var i = 0; i < bits.Length; i++)
        {
            var expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(widened[i]) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(widened[i]),
                $"f16 0x{bits[i]:x4}: {widened[i]:R}, expected {expected:R}");
            var one = F16Widening.Widen(bits[i]); // the scalar path (tails, quantized blocks' scales)
            Assert.True(float.IsNaN(expected) ? float.IsNaN(one) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(one),
                $"f16 0x{bits[i]:x4} alone: {one:R}, expected {expected:R}");
        }
        ManagedKernels.Widen<BF16Widening>(bits, widened);
        for (var i = 0; i < bits.Length; i++)
            Assert.Equal(bits[i] << 16, BitConverter.SingleToInt32Bits(widened[i]));
    }

    [Theory]
    [InlineData(ElementType.F32)]
    [InlineData(ElementType.F16)]
    [InlineData(ElementType.BF16)]
    public void MatMulBlocksAreBitIdenticalToSingleRows(ElementType type)
    {
        using var device = new ReferenceDevice();
        var random = new Random(7);
        foreach (var (outDim, inDim) in new[] { (1, 1), (5, 3), (13, 8), (9, 17), (6, 24), (7, 37), (12, 64) })
        {
            var values = Enumerable.Range(0, outDim * inDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            byte[] bytes = type switch
            {
                ElementType.F32 => MemoryMarshal.AsBytes(values.AsSpan()).ToArray(),
                ElementType.F16 => MemoryMarshal.AsBytes(values.Select(v => (Half)v).ToArray().AsSpan()).ToArray(),
                _ => MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray(),
            };
            using var weight = device.UploadWeight(type, bytes, outDim, inDim);
            foreach (var rows in new[] { 2, 3, 7, 9, 10 }) // tiles of 4 rows, then a short tile of 1, 2 or 3
            foreach (var accumulate in new[] { false, true })
            {
                var input = Enumerable.Range(0, rows * inDim).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
                var initial = Enumerable.Range(0, rows * outDim).Select(_ => (float)random.NextDouble()).ToArray();
                using var x = device.Allocate(rows * inDim);
                using var block = device.Allocate(rows * outDim);
                device.Upload(input, x);
                device.Upload(initial, block);
                device.MatMul(x, weight, block, rows, accumulate);
                var batched = new float[rows * outDim];
                device.Download(block, batched);
                for (var r = 0; r < rows; r++)
                {
                    using var single = device.Allocate(outDim);
                    device.Upload(initial.AsSpan(r * outDim, outDim), single);
                    device.MatMul(x.Slice(r * inDim, inDim), weight, single, 1, accumulate);
                    var one = new float[outDim];
                    device.Download(single, one);
                    for (var o = 0; o < outDim; o++)
                        Assert.True(BitConverter.SingleToInt32Bits(one[o]) == BitConverter.SingleToInt32Bits(batched[r * outDim + o]),
                            $"{type} [{outDim}x{inDim}] rows {rows}: row {r} out {o} accumulate {accumulate}: {one[o]:R} alone, {batched[r * outDim + o]:R} in a block");
                }
            }
        }
    }
}
