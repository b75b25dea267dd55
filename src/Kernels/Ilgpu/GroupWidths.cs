using ILGPU.Runtime;
using ILGPU.Runtime.OpenCL;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Threads per group of the explicitly grouped kernels, per family; each a power of two (the tree
/// reductions need one) no larger than <see cref="KernelLimits.MaxGroupSize"/> or the accelerator's limit.
/// GPUs use 256 everywhere. CPU OpenCL runtimes (PoCL) run one group on one core, its work-items as
/// loops between barriers, so a wide group buys no parallelism and pays log2(G) barrier rounds per
/// tree reduction over mostly idle work-items; there MatMul uses 4 and the rest 16. Measured on PoCL
/// (kangaroo-perf kernels, widths 1-256, interleaved; perf/README.md): MatMul at 4 is 2-2.3x faster
/// than 16 at 64 columns and 1.4x with 8-64 rows at 2048x2048 (one row: within 1.16x); Attention is
/// best at 8-16 (each thread scores a whole key, so wider tiles mean fewer reductions; 4 is up to 1.2x
/// slower at head dim 64, 256 2.4x slower at stories260K's shape); row reductions are flat from 1 to
/// 16 at one row, and 8-16 beat 4 by 1.2x for 64-row RmsNorm at dim 2048.
/// </summary>
/// <param name="Rows">Row reductions: RmsNorm (and its backward), Softmax, ArgMax, SoftCrossEntropy.</param>
/// <param name="MatMul">MatMul: one group per output feature.</param>
/// <param name="Attention">Attention: one group per (row, head), tiles of this many positions.</param>
internal readonly record struct GroupWidths(int Rows, int MatMul, int Attention)
{
    /// <summary>The product's widths for <paramref name="accelerator"/>, or <paramref name="width"/> for every
    /// family when given (tests run the OpenCL tier at 256 too, to keep multi-level reductions covered).</summary>
    public static GroupWidths For(Accelerator accelerator, int? width = null)
    {
        if (width is { } w)
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(w, 1, nameof(width));
            return Uniform(Fit(w, accelerator));
        }
        return accelerator is CLAccelerator { DeviceType: CLDeviceType.CL_DEVICE_TYPE_CPU }
            ? new(Rows: Fit(16, accelerator), MatMul: Fit(4, accelerator), Attention: Fit(16, accelerator))
            : Uniform(Fit(KernelLimits.MaxGroupSize, accelerator));
    }

    public static GroupWidths Uniform(int width) => new(width, width, width);

    /// <summary>The largest power of two no larger than <paramref name="width"/>, the accelerator's limit or <see cref="KernelLimits.MaxGroupSize"/>.</summary>
    private static int Fit(int width, Accelerator accelerator)
    {
        var limit = Math.Min(Math.Min(width, KernelLimits.MaxGroupSize), accelerator.MaxNumThreadsPerGroup);
        return 1 << (31 - System.Numerics.BitOperations.LeadingZeroCount((uint)limit));
    }

    public override string ToString() =>
        Rows == MatMul && MatMul == Attention ? $"{Rows}" : $"rows {Rows}, matmul {MatMul}, attention {Attention}";
}
