using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// One AdamW update (PyTorch's formulation, decoupled weight decay), element-wise.
///   math:   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
///           p = p * decay - stepSize * m / (sqrt(v) / sqrtCorrection2 + eps)
///           with decay = 1 - lr * wd, stepSize = lr / (1 - b1^t), sqrtCorrection2 = sqrt(1 - b2^t)
///           computed on the host once per step (as the reference device does).
///   launch: implicit, one thread per parameter.
///   bytes:  length * 16 read (p, g, m, v) + length * 12 written (p, m, v).
/// </summary>
internal static class AdamWKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void AdamW(Index1D index, ArrayView<float> parameters, ArrayView<float> gradients, ArrayView<float> moment1, ArrayView<float> moment2,
        float beta1, float beta2, float epsilon, float decay, float stepSize, float sqrtCorrection2)
    {
        var g = gradients[index];
        var m = beta1 * moment1[index] + (1f - beta1) * g;
        var v = beta2 * moment2[index] + (1f - beta2) * g * g;
        moment1[index] = m;
        moment2[index] = v;
        parameters[index] = parameters[index] * decay - stepSize * m / (MathF.Sqrt(v) / sqrtCorrection2 + epsilon);
    }
}
