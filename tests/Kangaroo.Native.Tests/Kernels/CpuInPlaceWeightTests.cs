using System.Runtime.InteropServices;
using Kangaroo.Native.Kernels.Cpu;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>The <c>cpu</c> device reads weights handed over with a lease (<see cref="WeightRows"/>) in place:
/// a stack of parts, each in its own memory at an unaligned address, computes every product and embedding
/// bit for bit as the same rows copied into one weight; its bytes count as borrowed, not allocated, and
/// its leases are given back with it. Parts that would split a 4-row tile are copied instead.</summary>
public sealed class CpuInPlaceWeightTests
{
    /// <summary>Bytes in unmanaged memory one byte past an aligned address, and a lease that frees them, counting its disposals.</summary>
    private sealed unsafe class LeasedRows : IDisposable
    {
        private readonly byte* _memory;

        public LeasedRows(ReadOnlySpan<byte> bytes)
        {
            _memory = (byte*)NativeMemory.AlignedAlloc((nuint)bytes.Length + 1, 64);
            Address = (nint)(_memory + 1);
            bytes.CopyTo(new Span<byte>((void*)Address, bytes.Length));
        }

        public nint Address { get; }
        public int Disposals { get; private set; }

        public void Dispose()
        {
            if (Disposals++ == 0) NativeMemory.AlignedFree(_memory);
        }
    }

    private static byte[] WeightBytes(ElementType type, int rows, int cols, int seed) =>
        type.IsQuantized() ? QuantizedKernelTests.Blocks(type, rows, cols, seed).Bytes : Encode(Random(rows * cols, seed), type).Bytes;

    /// <summary>Uploads [sum rows, cols] as parts of <paramref name="partRows"/> rows, each leased (or, where
    /// <paramref name="copied"/> says so, handed over without a lease).</summary>
    private static (DeviceWeight Weight, LeasedRows[] Leases) UploadParts(CpuDevice device, ElementType type, byte[] bytes, int cols, int[] partRows, bool[]? copied = null)
    {
        var rowBytes = (int)type.RowBytes(cols);
        var leases = new LeasedRows[partRows.Length];
        var parts = new WeightRows[partRows.Length];
        for (int k = 0, first = 0; k < partRows.Length; first += partRows[k++])
        {
            leases[k] = new LeasedRows(bytes.AsSpan(first * rowBytes, partRows[k] * rowBytes));
            parts[k] = new WeightRows(leases[k].Address, partRows[k], copied?[k] == true ? null : leases[k]);
        }
        var weight = device.UploadWeight(type, parts, cols);
        for (var k = 0; k < partRows.Length; k++)
            if (copied?[k] == true) leases[k].Dispose(); // the caller's own: valid only during the call
        return (weight, leases);
    }

    private static float[] MatMul(ComputeDevice device, DeviceWeight weight, float[] x, int rows)
    {
        using var input = Tensor(device, x);
        using var output = device.Allocate(rows * weight.Rows);
        device.MatMul(input, weight, output, rows);
        return Read(device, output);
    }

    private static void AssertSameResults(CpuDevice device, DeviceWeight expected, DeviceWeight actual, string what)
    {
        foreach (var rows in new[] { 1, 2, 3, 5, 9 })
        {
            var x = Random(rows * expected.Cols, seed: rows);
            AssertIdentical(MatMul(device, expected, x, rows), MatMul(device, actual, x, rows), $"{what}: matmul of {rows} rows");
        }
        var tokens = Enumerable.Range(0, expected.Rows).Reverse().ToArray();
        using var embedded = device.Allocate(tokens.Length * expected.Cols);
        device.Embed(tokens, expected, embedded);
        var want = Read(device, embedded);
        device.Embed(tokens, actual, embedded);
        AssertIdentical(want, Read(device, embedded), $"{what}: embedding");
    }

    [Theory]
    [InlineData(ElementType.F32, 24)]
    [InlineData(ElementType.F16, 40)]
    [InlineData(ElementType.BF16, 17)]
    [InlineData(ElementType.Q8_0, 64)]
    [InlineData(ElementType.Q4_0, 32)]
    [InlineData(ElementType.Q4_K, 256)]
    [InlineData(ElementType.Q6_K, 512)]
    public void Stacked_parts_in_place_compute_as_one_copied_weight(ElementType type, int cols)
    {
        using var device = new CpuDevice();
        int[] partRows = [8, 4, 12, 6]; // the parts start at multiples of 4 rows; the last is a short tile
        var bytes = WeightBytes(type, partRows.Sum(), cols, seed: cols);
        using var copy = device.UploadWeight(type, bytes, partRows.Sum(), cols);
        var allocated = device.AllocatedBytes;
        var (weight, leases) = UploadParts(device, type, bytes, cols, partRows);
        Assert.Equal(weight.Bytes, device.BorrowedBytes);
        Assert.Equal(allocated, device.AllocatedBytes);
        AssertSameResults(device, copy, weight, $"{type} [{partRows.Sum()}x{cols}] in place");
        Assert.All(leases, lease => Assert.Equal(0, lease.Disposals));
        weight.Dispose();
        Assert.All(leases, lease => Assert.Equal(1, lease.Disposals));
        Assert.Equal(0, device.BorrowedBytes);
    }

    /// <summary>A product large enough to be split over the cores reads its parts in place exactly as one weight.</summary>
    [Fact]
    public void A_product_split_over_cores_reads_its_parts_in_place_exactly()
    {
        using var device = new CpuDevice(threads: 3);
        int[] partRows = [1024, 256, 256];
        var bytes = WeightBytes(ElementType.Q8_0, partRows.Sum(), 1024, seed: 5);
        using var copy = device.UploadWeight(ElementType.Q8_0, bytes, partRows.Sum(), 1024);
        var (weight, _) = UploadParts(device, ElementType.Q8_0, bytes, 1024, partRows);
        using (weight) AssertSameResults(device, copy, weight, "Q8_0 [1536x1024] split over 3 threads");
    }

    /// <summary>Parts that meet inside a 4-row tile cannot be read in place: they are copied into one weight
    /// and their leases given back at once.</summary>
    [Fact]
    public void Parts_meeting_inside_a_tile_are_copied()
    {
        using var device = new CpuDevice();
        int[] partRows = [6, 10];
        var bytes = WeightBytes(ElementType.F16, 16, 24, seed: 3);
        using var copy = device.UploadWeight(ElementType.F16, bytes, 16, 24);
        var allocated = device.AllocatedBytes;
        var (weight, leases) = UploadParts(device, ElementType.F16, bytes, 24, partRows);
        using (weight)
        {
            Assert.All(leases, lease => Assert.Equal(1, lease.Disposals));
            Assert.Equal(0, device.BorrowedBytes);
            Assert.Equal(allocated + weight.Bytes, device.AllocatedBytes);
            AssertSameResults(device, copy, weight, "F16 parts of 6 and 10 rows");
        }
    }

    /// <summary>Parts without a lease (q and k permuted on load) are copied beside parts read in place, in one weight.</summary>
    [Fact]
    public void Copied_and_leased_parts_make_one_weight()
    {
        using var device = new CpuDevice();
        int[] partRows = [8, 4, 4];
        var bytes = WeightBytes(ElementType.Q8_0, 16, 64, seed: 9);
        using var copy = device.UploadWeight(ElementType.Q8_0, bytes, 16, 64);
        var allocated = device.AllocatedBytes;
        var (weight, leases) = UploadParts(device, ElementType.Q8_0, bytes, 64, partRows, copied: [true, true, false]);
        using (weight)
        {
            var rowBytes = ElementType.Q8_0.RowBytes(64);
            Assert.Equal(12 * rowBytes, device.AllocatedBytes - allocated);
            Assert.Equal(4 * rowBytes, device.BorrowedBytes);
            AssertSameResults(device, copy, weight, "Q8_0 copied q|k and v in place");
        }
        Assert.Equal(1, leases[2].Disposals);
    }

    /// <summary>Weights in place lie in a read-only map: training refuses to update them, clearly.</summary>
    [Fact]
    public void A_weight_in_place_cannot_be_updated()
    {
        using var device = new CpuDevice();
        var bytes = WeightBytes(ElementType.F32, 4, 8, seed: 1);
        var (weight, _) = UploadParts(device, ElementType.F32, bytes, 8, [4]);
        using (weight)
        using (var values = Tensor(device, Random(32, seed: 2)))
        {
            var error = Assert.Throws<InvalidOperationException>(() => device.UpdateWeight(values, weight));
            Assert.Contains("in place", error.Message);
        }
    }
}
