using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Matrix product with a Linear weight [out, in]: GEMV for one row (decode) and a small GEMM for a
/// block of rows (verification of ~9 drafted tokens, prefill of 64+).
///   math:   output[r, o] (+)= sum_i input[r, i] * widen(weight[o, i]), output row r at r * outputStride
///   launch: explicit, one group per output feature o (grid = out, group = G = GroupWidths.MatMul).
///           Rows are taken in passes of R = 8: thread t walks columns t, t + G, ... (coalesced
///           weight reads), reads each weight element once per pass and keeps R partial sums in
///           registers; a shared-memory tree over the G threads then reduces the R rows together.
///           Larger blocks loop over passes inside the group, so the weight row stays in cache.
///           Row r's sum is formed in the same order whatever the block size (the per-row
///           accumulation is the same instruction, rows past the block are skipped by a uniform
///           branch), so batched and one-row passes are bit-identical.
///   bytes:  out * in * sizeof(weight) (once per pass of 8 rows, from cache after the first)
///           + rows * in * 4 per output feature (input rows, cache-resident) + rows * out * 4 written.
/// Block-quantized weights (<see cref="IBlockRows"/>; <see cref="MatMulBlocks{TBlocks}"/>): the same
/// launch and passes, but thread t walks units of 4 columns (4t, 4t + 4G, ...) sharing a scale d and
/// offset m: r[k] += d * (q0 x0 + q1 x1 + q2 x2 + q3 x3), plus m * (x0 + x1 + x2 + x3) for types with
/// offsets (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K). For Q8_0 and Q4_0 a unit is one 32-bit word of quants and the
/// block's f16 scale, which the 8 threads of a block load in the same instruction (one transaction), so
/// each weight byte still crosses the bus once: out * in * 34/32 (Q8_0) or 18/32 (Q4_0) bytes; the other
/// types likewise read their blocks' words as stored (Q4_K 144, Q5_K 176, Q6_K 210 bytes per 256 values,
/// ...), the scale words shared by the threads of a block.
/// </summary>
internal static class MatMulKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void MatMul<TWeights>(ArrayView<float> input, TWeights weight, ArrayView<float> output,
        int rows, int inDim, int outputStride, int accumulate)
        where TWeights : struct, IWeightRows
    {
        const int R = KernelLimits.MatMulRowsPerPass;
        var partials = SharedMemory.Allocate<float>(R * KernelLimits.MaxGroupSize);
        var o = Grid.IdxX;
        var t = Group.IdxX;
        var g = Group.DimX;
        var weightRow = (long)o * inDim;
        for (var first = 0; first < rows; first += R)
        {
            var n = IntrinsicMath.Min(R, rows - first);
            var x = first * inDim;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f, s4 = 0f, s5 = 0f, s6 = 0f, s7 = 0f;
            for (var i = t; i < inDim; i += g)
            {
                var w = weight.Read(weightRow + i);
                s0 += w * input[x + i];
                if (n > 1) s1 += w * input[x + inDim + i];
                if (n > 2) s2 += w * input[x + 2 * inDim + i];
                if (n > 3) s3 += w * input[x + 3 * inDim + i];
                if (n > 4) s4 += w * input[x + 4 * inDim + i];
                if (n > 5) s5 += w * input[x + 5 * inDim + i];
                if (n > 6) s6 += w * input[x + 6 * inDim + i];
                if (n > 7) s7 += w * input[x + 7 * inDim + i];
            }
            Store(partials, s0, s1, s2, s3, s4, s5, s6, s7, n, output, first, outputStride, o, accumulate);
        }
    }

    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void MatMulBlocks<TBlocks>(ArrayView<float> input, TBlocks weight, ArrayView<float> output,
        int rows, int inDim, int outputStride, int accumulate)
        where TBlocks : struct, IBlockRows
    {
        const int R = KernelLimits.MatMulRowsPerPass;
        var partials = SharedMemory.Allocate<float>(R * KernelLimits.MaxGroupSize);
        var o = Grid.IdxX;
        var t = Group.IdxX;
        var g = Group.DimX;
        var units = inDim / 4;
        var firstUnit = (long)o * units;
        for (var first = 0; first < rows; first += R)
        {
            var n = IntrinsicMath.Min(R, rows - first);
            var x = first * inDim;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f, s4 = 0f, s5 = 0f, s6 = 0f, s7 = 0f;
            for (var u = t; u < units; u += g)
            {
                var d = weight.Read4(firstUnit + u, out var m, out var q0, out var q1, out var q2, out var q3);
                var i = x + 4 * u;
                s0 += Unit(weight, d, m, q0, q1, q2, q3, input, i);
                if (n > 1) s1 += Unit(weight, d, m, q0, q1, q2, q3, input, i + inDim);
                if (n > 2) s2 += Unit(weight, d, m, q0, q1, q2, q3, input, i + 2 * inDim);
                if (n > 3) s3 += Unit(weight, d, m, q0, q1, q2, q3, input, i + 3 * inDim);
                if (n > 4) s4 += Unit(weight, d, m, q0, q1, q2, q3, input, i + 4 * inDim);
                if (n > 5) s5 += Unit(weight, d, m, q0, q1, q2, q3, input, i + 5 * inDim);
                if (n > 6) s6 += Unit(weight, d, m, q0, q1, q2, q3, input, i + 6 * inDim);
                if (n > 7) s7 += Unit(weight, d, m, q0, q1, q2, q3, input, i + 7 * inDim);
            }
            Store(partials, s0, s1, s2, s3, s4, s5, s6, s7, n, output, first, outputStride, o, accumulate);
        }
    }

    /// <summary>One unit's term: d (q . x[i..i+4)), plus m (x[i] + ... + x[i + 3]) where the type has offsets
    /// (a branch on a constant of the type, removed when ILGPU specialises the kernel).</summary>
    private static float Unit<TBlocks>(TBlocks weight, float d, float m, float q0, float q1, float q2, float q3, ArrayView<float> x, int i)
        where TBlocks : struct, IBlockRows =>
        weight.HasOffset ? d * Dot4(q0, q1, q2, q3, x, i) + m * (x[i] + x[i + 1] + x[i + 2] + x[i + 3]) : d * Dot4(q0, q1, q2, q3, x, i);

    /// <summary>q0 x[i] + q1 x[i + 1] + q2 x[i + 2] + q3 x[i + 3], left to right.</summary>
    private static float Dot4(float q0, float q1, float q2, float q3, ArrayView<float> x, int i) =>
        q0 * x[i] + q1 * x[i + 1] + q2 * x[i + 2] + q3 * x[i + 3];

    /// <summary>The end of a pass: the group's partial sums of its n rows reduced by a shared-memory
    /// tree, then written (or added) to output[first + k, o] (rows outputStride apart).</summary>
    private static void Store(ArrayView<float> partials, float s0, float s1, float s2, float s3, float s4, float s5, float s6, float s7,
        int n, ArrayView<float> output, int first, int outputStride, int o, int accumulate)
    {
        var t = Group.IdxX;
        var g = Group.DimX;
        partials[t] = s0;
        partials[g + t] = s1;
        partials[2 * g + t] = s2;
        partials[3 * g + t] = s3;
        partials[4 * g + t] = s4;
        partials[5 * g + t] = s5;
        partials[6 * g + t] = s6;
        partials[7 * g + t] = s7;
        Group.Barrier();
        for (var stride = g / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                for (var k = 0; k < n; k++)
                    partials[k * g + t] += partials[k * g + t + stride];
            }
            Group.Barrier();
        }
        for (var k = t; k < n; k += g) // groups smaller than R write several rows per thread
        {
            var target = (first + k) * outputStride + o;
            var sum = partials[k * g];
            output[target] = accumulate != 0 ? output[target] + sum : sum;
        }
        Group.Barrier(); // partials are rewritten by the next pass
    }
}
