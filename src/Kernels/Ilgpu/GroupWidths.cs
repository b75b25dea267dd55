using ILGPU.Runtime;
using ILGPU.Runtime.OpenCL;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Threads per group of the explicitly grouped kernels, per family; each a power of two (the tree
/// reductions need one) no larger than <see cref="KernelLimits.MaxGroupSize"/> or the accelerator's limit.
/// GPUs use 256 everywhere. CPU OpenCL runtimes (PoCL) run one group on one core, its work-items as
/// loops between barriers, so a wide group buys no parallelism and pays log2(G) barrier rounds per
/// tree reduction over mostly idle work-items; there MatMul uses 4 and the rest 16, the fastest widths
/// of interleaved sweeps on PoCL (perf/README.md). Attention prefers 8-16 over narrower groups because
/// each thread scores a whole key, so wider tiles mean fewer reductions.
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
