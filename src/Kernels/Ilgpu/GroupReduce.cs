using ILGPU;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>
/// Tree reductions across one group through shared memory and <see cref="Group.Barrier"/> (portable:
/// no warp shuffles, which ILGPU 1.5.3 cannot emit for PoCL). The group size must be a power of two.
/// The order of additions depends only on the group size, never on how many rows a launch covers,
/// so a row reduces bit-identically whether it is computed alone or in a batch.
/// Every thread of the group must call these (they contain barriers); every thread gets the result.
/// </summary>
internal static class GroupReduce
{
    public static float Sum(ArrayView<float> scratch, float value)
    {
        var t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (var stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride) scratch[t] += scratch[t + stride];
            Group.Barrier();
        }
        var total = scratch[0];
        Group.Barrier(); // the caller may reuse scratch right away
        return total;
    }

    public static float Max(ArrayView<float> scratch, float value)
    {
        var t = Group.IdxX;
        scratch[t] = value;
        Group.Barrier();
        for (var stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride && scratch[t + stride] > scratch[t]) scratch[t] = scratch[t + stride];
            Group.Barrier();
        }
        var max = scratch[0];
        Group.Barrier();
        return max;
    }

    /// <summary>Index of the group's largest value, the lowest index among equals (every thread calls it).</summary>
    public static int ArgMax(ArrayView<float> values, ArrayView<int> indices, float value, int index)
    {
        var t = Group.IdxX;
        values[t] = value;
        indices[t] = index;
        Group.Barrier();
        for (var stride = Group.DimX / 2; stride > 0; stride >>= 1)
        {
            if (t < stride)
            {
                var otherValue = values[t + stride];
                var otherIndex = indices[t + stride];
                if (otherValue > values[t] || (otherValue == values[t] && otherIndex < indices[t]))
                {
                    values[t] = otherValue;
                    indices[t] = otherIndex;
                }
            }
            Group.Barrier();
        }
        var result = indices[0];
        Group.Barrier();
        return result;
    }
}
