using ILGPU;
using ILGPU.Runtime;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Token embedding lookup.
///   math:   output[r, c] = widen(table[tokens[r], c]); for block types the value scale * q (+ offset)
///           of its unit (<see cref="BlockValues.Read{TBlocks}"/>; the threads of a block read its scales together)
///   launch: implicit, one thread per output element (rows * dim); consecutive threads read
///           consecutive columns of one table row (coalesced).
///   bytes:  rows * dim * (sizeof(weight) + 4) + 4 * rows (sizeof Q8_0 34/32, Q4_0 18/32, Q4_K 144/256, ...) (the token ids, uploaded per call into a
///           preallocated buffer). Token ids are range-checked on the host.
/// </summary>
internal static class EmbeddingKernel
{
    [IlgpuKernel(KernelGrouping.Implicit)]
    public static void Embed<TWeights>(Index1D index, ArrayView<int> tokens, TWeights table, ArrayView<float> output, int dim)
        where TWeights : struct, IWeightRows
    {
        int i = index;
        var row = i / dim;
        var column = i - row * dim;
        output[i] = table.Read((long)tokens[row] * dim + column);
    }
}
