using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Sets every element of a view (zeroing gradient accumulators between optimiser steps).
///   math:   x[i] = value
///   launch: implicit, one thread per element.
///   bytes:  length * 4 written.
/// </summary>
internal static class FillKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void Fill(Index1D index, ArrayView<float> x, float value) => x[index] = value;
}
