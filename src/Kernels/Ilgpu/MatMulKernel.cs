using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Matrix product with a Linear weight [out, in]: GEMV for one row (decode) and a small GEMM for a
/// block of rows (verification of ~9 drafted tokens, prefill of 64+).
///   math:   output[r, o] (+)= sum_i input[r, i] * widen(weight[o, i])
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
/// </summary>
internal static class MatMulKernel
{
    [IlgpuKernel(KernelGrouping.Explicit)]
    public static void MatMul<TWeights>(ArrayView<float> input, TWeights weight, ArrayView<float> output,
        int rows, int inDim, int outDim, int accumulate)
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
                var target = (first + k) * outDim + o;
                var sum = partials[k * g];
                output[target] = accumulate != 0 ? output[target] + sum : sum;
            }
            Group.Barrier(); // partials are rewritten by the next pass
        }
    }
}
