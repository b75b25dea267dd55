using Kangaroo.Native.Kernels.Reference;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>
/// Q8_0 and Q4_0 weights read block by block inside the kernels, on every device, against
/// <see cref="ReferenceDevice"/> (which dequantizes by the format's definition, <see cref="IBlockFormat"/>,
/// and sums in float64). Blocks hold random quants (Q8_0's -128 included, which llama.cpp never writes
/// but a file may hold) under scales that are normal, negative, f16 subnormal and zero of both signs.
/// Shapes: one row and every block of 2..9 rows (the <c>cpu</c> block tile's 4 rows and its short last
/// tiles, the ILGPU passes of 8), output counts that are not multiples of the <c>cpu</c> decode tile's 4,
/// and rows of 32, 96 and 4160 values (130 blocks: not a multiple of any group width).
///
/// A dequantized value d * q is exact in float32, but no device multiplies every weight by d: the
/// ILGPU kernels sum d * (q . x) over units of 4 columns and the <c>cpu</c> device over blocks of 32
/// (16 lanes of 2 columns; without AVX2 it dequantizes and sums as the F32 product does), a
/// reordering with a few extra roundings per unit: within 2 (n + 4) u sum|x w|.
/// </summary>
public sealed class QuantizedKernelTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly ElementType[] Types = [ElementType.Q8_0, ElementType.Q4_0];
    private readonly ReferenceDevice _reference = new();

    /// <summary>f16 scales every matrix cycles through: normal, negative, subnormal (both signs), zero (both signs).</summary>
    private static readonly ushort[] SpecialScales = [0x2E66, 0xAE66, 0x0001, 0x83FF, 0x0000, 0x8000, 0x1A00];

    /// <summary>Random blocks of <paramref name="type"/> for a [rows, cols] weight and their values as the loader dequantizes them.</summary>
    internal static (byte[] Bytes, float[] Values) Blocks(ElementType type, int rows, int cols, int seed)
    {
        var bytes = new byte[type.ByteCount(rows, cols)];
        var random = new Random(seed);
        random.NextBytes(bytes);
        var size = type.BlockBytes();
        for (var b = 0; b < bytes.Length / size; b++)
        {
            // Mostly ordinary scales (|d| in [2^-9, 2^-6)), every third block one of the special ones.
            var scale = b % 3 == 2 ? SpecialScales[b / 3 % SpecialScales.Length] : (ushort)(0x1800 + random.Next(0x0C00) | (random.Next(2) << 15));
            BitConverter.TryWriteBytes(bytes.AsSpan(b * size), scale);
        }
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
        foreach (var cols in new[] { 32, 96 })
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
        foreach (var (rows, inDim, outDim) in new[] { (1, 32, 7), (2, 64, 5), (3, 96, 5), (4, 32, 9), (5, 64, 3), (6, 96, 6), (7, 32, 2), (8, 64, 5),
                     (9, 64, 6), (17, 32, 3), (1, 4160, 3), (5, 4160, 2) })
        foreach (var accumulate in new[] { false, true })
        {
            var x = Random(rows * inDim, seed: rows * 100 + inDim);
            var (bytes, w) = Blocks(type, outDim, inDim, seed: outDim + inDim);
            var prior = Random(rows * outDim, seed: 5);
            var expected = MatMul(_reference, type, bytes, x, prior, rows, inDim, outDim, accumulate);
            var actual = MatMul(device, type, bytes, x, prior, rows, inDim, outDim, accumulate);
            var what = $"MatMul {type} rows={rows} in={inDim} out={outDim} accumulate={accumulate} on {kind}";
            var bounds = new float[rows * outDim];
            for (var r = 0; r < rows; r++)
            for (var o = 0; o < outDim; o++)
            {
                var magnitude = 0f;
                for (var i = 0; i < inDim; i++) magnitude += MathF.Abs(x[r * inDim + i] * w[o * inDim + i]);
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
        foreach (var (rows, inDim, outDim) in new[] { (11, 96, 5), (10, 64, 9) }) // a full pass of 8 and a partial one; tiles of 4 and a short tile
        foreach (var accumulate in new[] { false, true })
        {
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
