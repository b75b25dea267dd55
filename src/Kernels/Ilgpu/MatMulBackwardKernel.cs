using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Backward of the matrix product with a Linear weight W [out, in] (y = x W^T).
///   math:   InputGradient:  dx[r, i] (+)= sum_o dy[r, o] * widen(W[o, i])   (o ascending)
///           WeightGradient: dW[o, i]  += sum_r dy[r, o] * x[r, i]          (r ascending)
///   launch: implicit, one thread per output element: (r, i) for the input gradient, (o, i) for
///           the weight gradient. Neighbouring threads take neighbouring i, so reads of W (resp. x)
///           are coalesced and dy is a broadcast. The input gradient of a row depends only on that
///           row; the weight gradient adds rows onto dW in order, so a block split over calls gives
///           identical bits.
///   bytes:  InputGradient: rows * in * (out * sizeof(weight) from cache + out * 4 broadcast) read,
///           rows * in * 4 written; WeightGradient: out * in * rows * 8 read (cached), out * in * 8.
///   note:   a tiled version (shared-memory blocks of dy and W) is the next experiment for large
///           vocabularies; the adapter's LM-head gradient is rows * dim * vocab multiply-adds.
/// </summary>
internal static class MatMulBackwardKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void InputGradient<TWeights>(Index1D index, ArrayView<float> dOutput, TWeights weight, ArrayView<float> dInput,
        int inDim, int outDim, int accumulate)
        where TWeights : struct, IWeightRows
    {
        int element = index;
        var r = element / inDim;
        var i = element - r * inDim;
        var sum = 0f;
        for (var o = 0; o < outDim; o++) sum += dOutput[r * outDim + o] * weight.Read((long)o * inDim + i);
        dInput[element] = accumulate != 0 ? dInput[element] + sum : sum;
    }

    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void WeightGradient(Index1D index, ArrayView<float> dOutput, ArrayView<float> input, ArrayView<float> dWeight,
        int rows, int inDim, int outDim)
    {
        int element = index;
        var o = element / inDim;
        var i = element - o * inDim;
        var sum = dWeight[element];
        for (var r = 0; r < rows; r++) sum += dOutput[r * outDim + o] * input[r * inDim + i];
        dWeight[element] = sum;
    }
}
