using Kangaroo.Native.Kernels.Reference;
using Kangaroo.Native.Tests.Numerics;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>
/// Block-quantized weights of every type read block by block inside the kernels, on every device, against
/// <see cref="ReferenceDevice"/> (which dequantizes by the format's definition, <see cref="IBlockFormat"/>,
/// and sums in float64). Blocks hold random quants (Q8_0's -128 included, which llama.cpp never writes
/// but a file may hold) under f16 scales and mins that are normal, negative, f16 subnormal, zero of both
/// signs and the largest finite, and K-quant sub-block scales that are random, all zero or all maximal
/// (<see cref="RandomBlocks"/>).
/// Shapes: one row and every block of 2..9 rows (the <c>cpu</c> block tile's 4 rows and its short last
/// tiles, the ILGPU passes of 8), output counts that are not multiples of the <c>cpu</c> decode tile's 4,
/// and rows of 1, 2, 3 and 130 blocks (130: not a multiple of any group width).
///
/// A dequantized value a q + b is what the format defines, but no device multiplies every weight by its
/// scale: the ILGPU kernels sum a (q . x) + b sum(x) over units of 4 columns and the <c>cpu</c> device over
/// sub-blocks of 16 or 32 (16 lanes; without AVX2 it dequantizes and sums as the F32 product does), a
/// reordering with a few extra roundings per unit: within 2 (n + 4) u sum(|x w| + |x b|).
/// </summary>
public sealed class QuantizedKernelTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly ElementType[] Types = [.. ElementTypes.All.Where(t => t.Format is not null).Select(t => t.Type)];
    private readonly ReferenceDevice _reference = new();

    /// <summary>Random blocks of <paramref name="type"/> for a [rows, cols] weight and their values as the loader dequantizes them.</summary>
    internal static (byte[] Bytes, float[] Values) Blocks(ElementType type, int rows, int cols, int seed)
    {
        var bytes = RandomBlocks.Make(type, checked((int)(type.ByteCount(rows, cols) / type.BlockBytes())), seed);
        return (bytes, new TensorData(type, [rows, cols], bytes).ToFloats());
    }

    private static float[] MatMul(ComputeDevice device, ElementType type, byte[] bytes, float[] x, float[] prior, int rows, int inDim, int outDim, bool accumulate)
    {
        using var weight = device.UploadWeight(type, bytes, outDim, inDim);
        using var input = Tensor(device, x);
        using var output = Tensor(device, prior);
        device.MatMul(input, weight, output, rows, accumulate);
        return Read(device, output);
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Embed_dequantizes_exactly(string kind)
    {
        var device = devices.Get(kind);
        int[] tokens = [3, 0, 10, 3, 7, 13];
        foreach (var type in Types)
        foreach (var cols in new[] { type.BlockLength(), 3 * type.BlockLength() })
        {
            var (bytes, values) = Blocks(type, 14, cols, seed: cols);
            using var table = device.UploadWeight(type, bytes, 14, cols);
            Assert.Equal(14L * type.RowBytes(cols), table.Bytes);
            using var output = device.Allocate(tokens.Length * cols);
            device.Embed(tokens, table, output);
            AssertIdentical(tokens.SelectMany(t => values.Skip(t * cols).Take(cols)).ToArray(), Read(device, output), $"Embed {type} cols={cols} on {kind}");
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void MatMul_matches_dequantized_reference(string kind)
    {
        var device = devices.Get(kind);
        foreach (var type in Types)
        foreach (var (rows, inBlocks, outDim) in new[] { (1, 1, 7), (2, 2, 5), (3, 3, 5), (4, 1, 9), (5, 2, 3), (6, 3, 6), (7, 1, 2), (8, 2, 5),
                     (9, 2, 6), (17, 1, 3), (1, 130, 3), (5, 130, 2) })
        foreach (var accumulate in new[] { false, true })
        {
            var inDim = inBlocks * type.BlockLength();
            var x = Random(rows * inDim, seed: rows * 100 + inDim);
            var (bytes, w) = Blocks(type, outDim, inDim, seed: outDim + inDim);
            var offsets = RandomBlocks.Offsets(type, bytes);
            var prior = Random(rows * outDim, seed: 5);
            var expected = MatMul(_reference, type, bytes, x, prior, rows, inDim, outDim, accumulate);
            var actual = MatMul(device, type, bytes, x, prior, rows, inDim, outDim, accumulate);
            var what = $"MatMul {type} rows={rows} in={inDim} out={outDim} accumulate={accumulate} on {kind}";
            var bounds = new float[rows * outDim];
            for (var r = 0; r < rows; r++)
            for (var o = 0; o < outDim; o++)
            {
                var magnitude = 0f;
                for (var i = 0; i < inDim; i++) magnitude += MathF.Abs(x[r * inDim + i]) * (MathF.Abs(w[o * inDim + i]) + 2 * MathF.Abs(offsets[o * inDim + i]));
                bounds[r * outDim + o] = 2 * (inDim + 4) * U * magnitude + (accumulate ? 4 * U * (MathF.Abs(prior[r * outDim + o]) + magnitude) : 0f) + 1e-30f;
            }
            AssertWithin(expected, actual, bounds, what);
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void MatMul_block_is_bit_identical_to_one_row_calls(string kind)
    {
        var device = devices.Get(kind);
        foreach (var type in Types)
        foreach (var (rows, inBlocks, outDim) in new[] { (11, 3, 5), (10, 2, 9), (2, 2, 9), (3, 3, 5), (7, 2, 8), (13, 2, 6) }) // register tiles for up to 8 rows, panels beyond, with short tiles
        foreach (var accumulate in new[] { false, true })
        {
            var inDim = inBlocks * type.BlockLength();
            var (bytes, _) = Blocks(type, outDim, inDim, seed: 3);
            using var weight = device.UploadWeight(type, bytes, outDim, inDim);
            AssertBlockMatchesRows(device, weight, rows, accumulate, $"MatMul {type} [{outDim}x{inDim}] accumulate={accumulate} on {kind}");
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu")]
    public void Quantized_weights_are_refused_where_they_cannot_be(string kind)
    {
        var device = devices.Get(kind);
        Assert.Contains("99", Assert.Throws<NotSupportedException>(() => device.UploadWeight((ElementType)99, new byte[4], 1, 1)).Message);
        Assert.Contains("40", Assert.Throws<ArgumentException>(() => device.UploadWeight(ElementType.Q8_0, new byte[68], 1, 40)).Message);
        var (bytes, _) = Blocks(ElementType.Q4_0, 1, 32, seed: 1);
        using var gain = device.UploadWeight(ElementType.Q4_0, bytes, 1, 32);
        using var x = device.Allocate(32);
        Assert.Contains("RMSNorm", Assert.Throws<NotSupportedException>(() => device.RmsNorm(x, gain, x, 1, 1e-5f)).Message);
    }
}
