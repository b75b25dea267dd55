namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>How a kernel's launch is shaped.</summary>
internal enum KernelGrouping
{
    /// <summary>One thread per element: <c>Action&lt;Index1D, ...&gt;</c>, launched auto-grouped.</summary>
    Implicit,

    /// <summary>Explicit groups with shared memory and barriers: launched with a <c>KernelConfig</c>.</summary>
    Explicit,
}

/// <summary>
/// Marks a static method as a GPU kernel. <see cref="IlgpuDevice"/> refuses to load a method without
/// it, and the CUDA compile test compiles every marked method (generic ones once per
/// <see cref="IWeightRows"/> reader) for several architectures, so every kernel is covered.
/// </summary>
[AttributeUsage(AttributeTargets.Method, AllowMultiple = false)]
internal sealed class IlgpuKernelAttribute(KernelGrouping grouping) : Attribute
{
    public KernelGrouping Grouping { get; } = grouping;
}

/// <summary>Compile-time limits shared by the kernels (static shared memory needs constant sizes).</summary>
internal static class KernelLimits
{
    /// <summary>Largest group size the explicitly grouped kernels are launched with (a power of two).</summary>
    public const int MaxGroupSize = 256;

    /// <summary>Largest attention head dimension (the query and the output accumulator live in shared memory).</summary>
    public const int MaxHeadDim = 256;

    /// <summary>Input rows whose partial sums one MatMul thread keeps in registers.</summary>
    public const int MatMulRowsPerPass = 8;
}
