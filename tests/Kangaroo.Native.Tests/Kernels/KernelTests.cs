using System.Runtime.InteropServices;
using Kangaroo.Native.Kernels.Reference;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>
/// Every kernel of the <c>cpu</c> device and the ILGPU devices against <see cref="ReferenceDevice"/> at
/// awkward shapes: sizes that are not multiples of the vector width (8 or 16 floats on <c>cpu</c>) or the
/// group size (2 on the CPU emulator, narrow on OpenCL CPU runtimes, 256 on the opencl-wide tier and
/// GPUs), one row and every block of 2..9 rows (the <c>cpu</c> tiles of 4 rows and their short last
/// tiles; the ILGPU passes of 8), positions past one attention tile, GQA ratios 1, 2 and 4, and
/// F32/F16/BF16 weights for every kernel that reads weights; plus bit-identity of batched and one-row
/// MatMul and Attention (speculative verification relies on it). Shapes are tiny because the CPU
/// emulator runs each GPU thread as an OS thread.
///
/// Tolerances: a float32 sum evaluated in any order differs from the exact sum by at most
/// (n - 1) u sum|terms| (u = 2^-24, first order); the reference sums in float64 and rounds once, so a
/// kernel's distance from it is its own error, bounded here by twice that (n u sum|terms| per side, as
/// between two float32 orders). Element-wise kernels round a few times per element: a handful of u,
/// plus a few ulp for exp/sqrt on GPUs.
/// </summary>
public sealed class KernelTests(SharedDevices devices) : IClassFixture<SharedDevices>
{
    private static readonly ElementType[] ElementTypes = [ElementType.F32, ElementType.F16, ElementType.BF16];
    private readonly ReferenceDevice _reference = new();

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Embed_matches_reference_for_every_weight_type(string kind)
    {
        var device = devices.Get(kind);
        int[] tokens = [3, 0, 10, 3, 7];
        foreach (var type in ElementTypes)
        {
            var (bytes, _) = Encode(Random(11 * 13, seed: 1, scale: 3f), type);
            float[] On(ComputeDevice d)
            {
                using var table = d.UploadWeight(type, bytes, 11, 13);
                using var output = d.Allocate(tokens.Length * 13);
                d.Embed(tokens, table, output);
                return Read(d, output);
            }
            AssertIdentical(On(_reference), On(device), $"Embed {type}");
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Embed_widens_16_bit_special_values_exactly(string kind)
    {
        var device = devices.Get(kind);
        // zeros, smallest/largest subnormal, smallest normal, one, largest finite, infinities, quiet NaNs.
        ushort[] f16 = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x3555, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00];
        ushort[] bf16 = [0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x3F80, 0xBF80, 0x4049, 0x7F7F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0, 0x3E2A, 0x1234];
        foreach (var (type, bits) in new[] { (ElementType.F16, f16), (ElementType.BF16, bf16) })
        {
            var bytes = MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
            float[] On(ComputeDevice d)
            {
                using var table = d.UploadWeight(type, bytes, 1, bits.Length);
                using var output = d.Allocate(bits.Length);
                d.Embed([0], table, output);
                return Read(d, output);
            }
            AssertIdentical(On(_reference), On(device), $"{type} specials");
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void RmsNorm_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        foreach (var type in ElementTypes)
        foreach (var (rows, dim) in new[] { (1, 13), (3, 37) })
        {
            var x = Random(rows * dim, seed: rows + dim, scale: 2f);
            var (gain, _) = Encode(Random(dim, seed: 7).Select(v => 1f + v / 2).ToArray(), type);
            float[] On(ComputeDevice d)
            {
                using var weight = d.UploadWeight(type, gain, 1, dim);
                using var input = Tensor(d, x);
                using var output = d.Allocate(rows * dim);
                d.RmsNorm(input, weight, output, rows, 1e-5f);
                return Read(d, output);
            }
            // The sum of squares (positive terms) is off by <= dim u relative in any order; the scale
            // inherits half of that through the square root, the products add 2 u; doubled for GPU sqrt.
            AssertClose(On(_reference), On(device), rtol: 2 * (dim + 8) * U, atol: 1e-30f, $"RmsNorm {type} rows={rows} dim={dim}");
        }
    }

    /// <summary>rows, in, out: one row and blocks of 2..9 rows and 17; widths below, between and above
    /// the vector widths, odd output counts (a weight row left over from the cpu tiles' pairs and 4s).</summary>
    private static readonly (int Rows, int In, int Out)[] MatMulShapes =
        [(1, 13, 7), (2, 37, 5), (3, 37, 5), (4, 20, 6), (5, 9, 3), (6, 24, 9), (7, 13, 7), (8, 40, 2), (9, 20, 6), (17, 9, 3), (1, 70, 1)];

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void MatMul_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        foreach (var type in ElementTypes)
        foreach (var (rows, inDim, outDim) in MatMulShapes)
        foreach (var accumulate in new[] { false, true })
        {
            var x = Random(rows * inDim, seed: rows * 100 + inDim);
            var (bytes, w) = Encode(Random(outDim * inDim, seed: outDim), type);
            var prior = Random(rows * outDim, seed: 5);
            float[] On(ComputeDevice d)
            {
                using var weight = d.UploadWeight(type, bytes, outDim, inDim);
                using var input = Tensor(d, x);
                using var output = Tensor(d, prior);
                d.MatMul(input, weight, output, rows, accumulate);
                return Read(d, output);
            }
            var bounds = new float[rows * outDim];
            for (var r = 0; r < rows; r++)
            for (var o = 0; o < outDim; o++)
            {
                var magnitude = 0f;
                for (var i = 0; i < inDim; i++) magnitude += MathF.Abs(x[r * inDim + i] * w[o * inDim + i]);
                // two orders of one dot product: 2 n u sum|x w|; accumulating adds one rounding of |prior| + |dot|.
                bounds[r * outDim + o] = 2 * (inDim + 1) * U * magnitude + (accumulate ? 4 * U * (MathF.Abs(prior[r * outDim + o]) + magnitude) : 0f) + 1e-30f;
            }
            AssertWithin(On(_reference), On(device), bounds, $"MatMul {type} rows={rows} in={inDim} out={outDim} accumulate={accumulate}");
        }
    }

    /// <summary>A weight fills its columns of a wider output (rows <c>outputStride</c> apart) with exactly what it
    /// writes into an output of its own, and leaves the other columns as they were: how a stack of matrices
    /// that keep different element types runs. F32, and Q4_K for the block kernels.</summary>
    [Theory, DeviceData("cpu"), DeviceData("reference"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void MatMul_fills_its_columns_of_a_wider_output(string kind)
    {
        var device = devices.Get(kind);
        const int inDim = 256, outDim = 5, stride = 12, offset = 4;
        foreach (var type in new[] { ElementType.F32, ElementType.Q4_K })
        foreach (var rows in new[] { 1, 3, 9 })
        foreach (var accumulate in new[] { false, true })
        {
            var bytes = type == ElementType.F32 ? Encode(Random(outDim * inDim, seed: 8), type).Bytes : QuantizedKernelTests.Blocks(type, outDim, inDim, seed: 8).Bytes;
            var prior = Random(rows * stride, seed: 7);
            using var weight = device.UploadWeight(type, bytes, outDim, inDim);
            using var input = Tensor(device, Random(rows * inDim, seed: rows));
            using var wide = Tensor(device, prior);
            device.MatMul(input, weight, wide.Slice(offset, rows * stride - offset), rows, accumulate, outputStride: stride);
            var columns = new float[rows * outDim];
            for (var r = 0; r < rows; r++) Array.Copy(prior, r * stride + offset, columns, r * outDim, outDim);
            using var own = Tensor(device, columns);
            device.MatMul(input, weight, own, rows, accumulate);
            var expected = (float[])prior.Clone();
            var written = Read(device, own);
            for (var r = 0; r < rows; r++) Array.Copy(written, r * outDim, expected, r * stride + offset, outDim);
            AssertIdentical(expected, Read(device, wide), $"MatMul {type} rows={rows} accumulate={accumulate} into columns {offset}..{offset + outDim - 1} of {stride}");
        }
        using var narrow = device.UploadWeight(ElementType.F32, new byte[4 * outDim * inDim], outDim, inDim);
        using var x = device.Allocate(inDim);
        Assert.Throws<ArgumentOutOfRangeException>(() => device.MatMul(x, narrow, x, 1, outputStride: outDim - 1));
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void MatMul_block_is_bit_identical_to_one_row_calls(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 11, inDim = 21, outDim = 5; // 11 rows: one full pass of 8 and a partial one
        foreach (var type in ElementTypes)
        foreach (var accumulate in new[] { false, true })
        {
            var (bytes, _) = Encode(Random(outDim * inDim, seed: 3), type);
            using var weight = device.UploadWeight(type, bytes, outDim, inDim);
            AssertBlockMatchesRows(device, weight, rows, accumulate, $"MatMul {type} accumulate={accumulate}");
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Rope_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 3, heads = 2, headDim = 10, startPos = 4;
        var x = Random(rows * heads * headDim, seed: 8, scale: 2f);
        float[] On(ComputeDevice d)
        {
            using var table = new RotaryTable(d, headDim, positions: 16, theta: 10000f);
            using var tensor = Tensor(d, x);
            d.Rope(tensor, rows, heads, startPos, table);
            return Read(d, tensor);
        }
        // x0 c - x1 s: at most 3 roundings of terms bounded by |x| <= 2.
        AssertClose(On(_reference), On(device), rtol: 0f, atol: 3 * 2 * 2 * U, "Rope");
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void AddBias_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 5, width = 13;
        var x = Random(rows * width, seed: 21);
        var b = Random(width, seed: 22);
        float[] On(ComputeDevice d)
        {
            using var tensor = Tensor(d, x);
            using var bias = Tensor(d, b);
            d.AddBias(tensor, bias, rows);
            return Read(d, tensor);
        }
        // One rounded addition per element: identical on every device.
        AssertIdentical(On(_reference), On(device), "AddBias");
        Assert.Equal(x[2 * width + 7] + b[7], On(_reference)[2 * width + 7]);
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Rope_with_scaled_frequencies_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 3, heads = 2, startPos = 9;
        double[] frequencies = [1.0, 0.125, 0.03, 1e-4, 2.5e-6];
        var x = Random(rows * heads * 2 * frequencies.Length, seed: 23, scale: 2f);
        float[] On(ComputeDevice d)
        {
            using var table = new RotaryTable(d, positions: 16, frequencies);
            using var tensor = Tensor(d, x);
            d.Rope(tensor, rows, heads, startPos, table);
            return Read(d, tensor);
        }
        AssertClose(On(_reference), On(device), rtol: 0f, atol: 3 * 2 * 2 * U, "Rope (scaled frequencies)");
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("cuda")]
    public void SplitQkv_equals_copies_then_Rope_and_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        // heads, kvHeads, headDim, rows, startPos: MHA, GQA 2 and 4, one row, odd head counts.
        foreach (var (heads, kvHeads, headDim, rows, startPos) in new[] { (3, 3, 6, 1, 0), (4, 2, 10, 3, 5), (8, 2, 4, 2, 9), (5, 1, 12, 4, 11) })
        {
            var (dim, kvDim) = (heads * headDim, kvHeads * headDim);
            var qkv = Random(rows * (dim + 2 * kvDim), seed: 30 + heads, scale: 2f);
            float[] Fused(ComputeDevice d)
            {
                using var table = new RotaryTable(d, headDim, positions: 16, theta: 10000f);
                using var input = Tensor(d, qkv);
                using var q = d.Allocate(rows * dim);
                using var k = d.Allocate((startPos + rows) * kvDim); // a one-sequence cache of positions 0..startPos + rows - 1
                using var v = d.Allocate((startPos + rows) * kvDim);
                d.SplitQkv(input, q, k, v, BatchRows.Sequence(0, startPos, rows), heads, kvHeads, startPos + rows, table);
                return [.. Read(d, q), .. Read(d, k).Skip(startPos * kvDim), .. Read(d, v).Skip(startPos * kvDim)];
            }
            float[] Separate(ComputeDevice d)
            {
                float[] Part(int offset, int width) => Enumerable.Range(0, rows).SelectMany(r => qkv.Skip(r * (dim + 2 * kvDim) + offset).Take(width)).ToArray();
                using var table = new RotaryTable(d, headDim, positions: 16, theta: 10000f);
                using var q = Tensor(d, Part(0, dim));
                using var k = Tensor(d, Part(dim, kvDim));
                d.Rope(q, rows, heads, startPos, table);
                d.Rope(k, rows, kvHeads, startPos, table);
                return [.. Read(d, q), .. Read(d, k), .. Part(dim + kvDim, kvDim)];
            }
            var what = $"SplitQkv heads={heads} kvHeads={kvHeads} headDim={headDim} rows={rows} startPos={startPos}";
            var fused = Fused(device);
            AssertIdentical(Separate(device), fused, what + " vs copies + Rope on " + kind); // the same rotation, so the same bits
            AssertClose(Fused(_reference), fused, rtol: 0f, atol: 3 * 2 * 2 * U, what); // as Rope_matches_reference
        }
    }

    public static TheoryData<int, int, int, int, int> AttentionShapes => new()
    {
        // heads, kvHeads, headDim, rows, startPos
        { 3, 3, 6, 1, 0 },   // heads == kvHeads, first position
        { 3, 3, 6, 2, 11 },  // positions past one tile of 8
        { 4, 2, 10, 3, 5 },  // GQA 2, headDim > group size
        { 8, 2, 4, 2, 9 },   // GQA 4
        { 4, 1, 12, 1, 20 }, // GQA 4, single kv head, three tiles
        { 2, 1, 20, 2, 3 },  // headDim > the narrow OpenCL group
        { 4, 2, 10, 9, 2 },  // a block of 9 rows
    };

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Attention_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        foreach (var shape in AttentionShapes)
        {
            var (heads, kvHeads, headDim, rows, startPos) = ((int)shape[0], (int)shape[1], (int)shape[2], (int)shape[3], (int)shape[4]);
            var what = $"Attention heads={heads} kvHeads={kvHeads} headDim={headDim} rows={rows} startPos={startPos}";
            // Scores err by <= 2 headDim u sum|q k| (<= 1e-5 here); exp turns that into relative errors of
            // the weights, and the output is a convex combination of |v| <= 1.
            AssertClose(Attend(_reference, heads, kvHeads, headDim, rows, startPos), Attend(device, heads, kvHeads, headDim, rows, startPos),
                rtol: 1e-4f, atol: 2e-5f, what);
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Attention_handles_long_contexts(string kind)
    {
        var device = devices.Get(kind);
        // 2,500 positions: hundreds of tiles of the online softmax, far beyond any shared-memory score buffer.
        AssertClose(Attend(_reference, 2, 1, 8, 2, 2500), Attend(device, 2, 1, 8, 2, 2500), rtol: 1e-4f, atol: 2e-5f, "Attention at position 2500");
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Attention_block_is_bit_identical_to_one_row_calls(string kind)
    {
        var device = devices.Get(kind);
        const int heads = 4, kvHeads = 2, headDim = 6, rows = 5, startPos = 9;
        var qDim = heads * headDim;
        var kvDim = kvHeads * headDim;
        using var q = Tensor(device, Random(rows * qDim, seed: 11));
        using var keys = Tensor(device, Random((startPos + rows) * kvDim, seed: 12));
        using var values = Tensor(device, Random((startPos + rows) * kvDim, seed: 13));
        using var batched = device.Allocate(rows * qDim);
        using var single = device.Allocate(rows * qDim);
        device.Attention(q, keys, values, batched, BatchRows.Sequence(0, startPos, rows), heads, kvHeads, headDim, startPos + rows);
        for (var r = 0; r < rows; r++)
            device.Attention(q.Slice(r * qDim, qDim), keys, values, single.Slice(r * qDim, qDim), BatchRows.Sequence(0, startPos + r, 1), heads, kvHeads, headDim, startPos + rows);
        AssertIdentical(Read(device, single), Read(device, batched), "Attention block vs rows");
    }

    /// <summary>A pass holding rows of several sequences (cache slots) at their own positions gives each
    /// row exactly what a pass of that row alone gives: what continuous batching relies on.</summary>
    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Rows_of_several_sequences_equal_each_alone(string kind)
    {
        var device = devices.Get(kind);
        const int heads = 4, kvHeads = 2, headDim = 6, slots = 3, slotPositions = 13;
        var (qDim, kvDim) = (heads * headDim, kvHeads * headDim);
        int[] rowSlots = [2, 2, 2, 0, 1, 1], rowPositions = [4, 5, 6, 12, 0, 1];
        var rows = new BatchRows(rowSlots.Length);
        rows.Set(rowSlots, rowPositions);
        using var table = new RotaryTable(device, headDim, positions: slotPositions, theta: 10000f);
        var qkv = Random(rows.Count * (qDim + 2 * kvDim), seed: 41);
        var cache = Random(slots * slotPositions * kvDim, seed: 42);
        float[] Run(bool together)
        {
            using var input = Tensor(device, qkv);
            using var keys = Tensor(device, cache);
            using var values = Tensor(device, cache.Select(x => -x).ToArray());
            using var query = device.Allocate(rows.Count * qDim);
            using var output = device.Allocate(rows.Count * qDim);
            if (together)
            {
                device.SplitQkv(input, query, keys, values, rows, heads, kvHeads, slotPositions, table);
                device.Attention(query, keys, values, output, rows, heads, kvHeads, headDim, slotPositions);
            }
            else
            {
                var width = qDim + 2 * kvDim;
                for (var r = 0; r < rows.Count; r++)
                {
                    var one = BatchRows.Sequence(rows.Slot(r), rows.Position(r), 1);
                    device.SplitQkv(input.Slice(r * width, width), query.Slice(r * qDim, qDim), keys, values, one, heads, kvHeads, slotPositions, table);
                    device.Attention(query.Slice(r * qDim, qDim), keys, values, output.Slice(r * qDim, qDim), one, heads, kvHeads, headDim, slotPositions);
                }
            }
            return [.. Read(device, output), .. Read(device, keys), .. Read(device, values)];
        }
        AssertIdentical(Run(together: false), Run(together: true), "rows of three sequences in one pass vs each row alone");
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void SwiGlu_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 3, hidden = 13;
        var gateUp = Random(2 * rows * hidden, seed: 14, scale: 6f);
        float[] On(ComputeDevice d)
        {
            using var input = Tensor(d, gateUp);
            using var output = Tensor(d, Random(rows * hidden + 3, seed: 15)); // the last 3 elements must stay untouched
            d.SwiGlu(input, output, rows, hidden);
            return Read(d, output);
        }
        // exp, then +, /, *: no cancellation, so a relative bound. On CUDA exp(x) is ex2.approx(x log2 e):
        // ~2 ulp plus |x log2 e| u ln 2 (<= 6e-7 for |x| <= 6), about 10 u in all; bound 32 u.
        AssertClose(On(_reference), On(device), rtol: 32 * U, atol: 1e-30f, "SwiGlu");
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Add_matches_reference_exactly(string kind)
    {
        var device = devices.Get(kind);
        var target = Random(40, seed: 16);
        var addend = Random(40, seed: 17);
        float[] On(ComputeDevice d)
        {
            using var t = Tensor(d, target);
            using var a = Tensor(d, addend);
            d.Add(t, a, 37);
            return Read(d, t);
        }
        AssertIdentical(On(_reference), On(device), "Add"); // one correctly rounded addition each
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Softmax_matches_reference(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 3, cols = 37;
        var logits = Random(rows * cols, seed: 18, scale: 4f);
        foreach (var temperature in new[] { 1f, 0.7f })
        {
            float[] On(ComputeDevice d)
            {
                using var t = Tensor(d, logits);
                d.Softmax(t, rows, cols, temperature);
                return Read(d, t);
            }
            // The normaliser is a sum of cols positive terms (<= cols u relative in any order), plus exp and division.
            AssertClose(On(_reference), On(device), rtol: 2 * (cols + 8) * U, atol: 1e-12f, $"Softmax T={temperature}");
        }
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void ArgMax_picks_the_lowest_index_on_ties_and_its_probability(string kind)
    {
        var device = devices.Get(kind);
        const int rows = 5, cols = 37;
        var logits = Random(rows * cols, seed: 19, scale: 3f);
        logits[1 * cols + 5] = logits[1 * cols + 30] = 9f; // tie across different threads: 5 wins
        logits[2 * cols + 36] = 9f;                         // last column
        Array.Fill(logits, 0.25f, 3 * cols, cols);         // all equal: 0 wins, probability 1/cols
        logits[4 * cols + 0] = 9f;                          // first column
        TopToken[] On(ComputeDevice d)
        {
            using var t = Tensor(d, logits);
            var result = new TopToken[rows];
            d.ArgMax(t, rows, cols, result);
            return result;
        }
        var expected = On(_reference);
        var actual = On(device);
        Assert.Equal(expected.Select(e => e.Id), actual.Select(a => a.Id));
        Assert.Equal([5, 36, 0, 0], actual.Skip(1).Select(a => a.Id));
        AssertClose(expected.Select(e => e.Probability).ToArray(), actual.Select(a => a.Probability).ToArray(),
            rtol: 2 * (cols + 8) * U, atol: 0f, "ArgMax probability");
    }

    [Theory, DeviceData("cpu"), DeviceData("ilgpu-cpu"), DeviceData("opencl"), DeviceData("opencl-wide"), DeviceData("cuda")]
    public void Buffers_upload_download_copy_slice_and_count_bytes(string kind)
    {
        var device = devices.Get(kind);
        var before = device.AllocatedBytes;
        using (var a = device.Allocate(10))
        using (var b = device.Allocate(10))
        {
            Assert.True(device.AllocatedBytes >= before + 80);
            Assert.Equal(new float[10], Read(device, a)); // zero-filled
            device.Upload([1f, 2f, 3f], a.Slice(4, 3));
            device.Copy(a.Slice(3, 5), b.Slice(1, 5));
            Assert.Equal([0f, 0f, 1f, 2f, 3f, 0f, 0f, 0f, 0f, 0f], Read(device, b));
            var part = new float[2];
            device.Download(b.Slice(3, 5), part);
            Assert.Equal([2f, 3f], part);
            using var w = device.UploadWeight(ElementType.BF16, new byte[12], 2, 3);
            Assert.Throws<ArgumentOutOfRangeException>(() => device.Embed([2], w, a));
        }
        Assert.Equal(before, device.AllocatedBytes);
    }

    private static float[] Attend(ComputeDevice d, int heads, int kvHeads, int headDim, int rows, int startPos)
    {
        var positions = startPos + rows;
        using var q = Tensor(d, Random(rows * heads * headDim, seed: heads * 31 + startPos));
        using var keys = Tensor(d, Random(positions * kvHeads * headDim, seed: 21));
        using var values = Tensor(d, Random(positions * kvHeads * headDim, seed: 22));
        using var output = d.Allocate(rows * heads * headDim);
        d.Attention(q, keys, values, output, BatchRows.Sequence(0, startPos, rows), heads, kvHeads, headDim, positions);
        return Read(d, output);
    }

}
