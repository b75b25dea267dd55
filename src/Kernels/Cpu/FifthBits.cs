using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>The fifth bits of Q5_0 and Q5_1 quants: bit i of the 32-bit word qh belongs to value i, and
/// becomes 16 (or 0) in lane i of the result, ready to be or-ed onto the value's nibble.</summary>
internal static class FifthBits
{
    /// <summary>Values 0..15 (<paramref name="low"/>) and 16..31 (<paramref name="high"/>): the word shifted
    /// right by each lane's index, bit 4 kept (shifted left 4 first for the low half, right 12 for the high).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void In16Lanes(uint qh, out Vector512<uint> low, out Vector512<uint> high)
    {
        var lanes = Vector512.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u);
        var sixteen = Vector512.Create(16u);
        low = Avx512F.ShiftRightLogicalVariable(Vector512.Create(qh << 4), lanes) & sixteen;
        high = Avx512F.ShiftRightLogicalVariable(Vector512.Create(qh >> 12), lanes) & sixteen;
    }

    /// <summary>The same with AVX2, 8 values at a time: values 0..7, 8..15, 16..23 and 24..31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void In8Lanes(uint qh, out Vector256<uint> v0, out Vector256<uint> v1, out Vector256<uint> v2, out Vector256<uint> v3)
    {
        var (first, second) = (Vector256.Create(0u, 1u, 2u, 3u, 4u, 5u, 6u, 7u), Vector256.Create(8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u));
        var (lowWord, highWord, sixteen) = (Vector256.Create(qh << 4), Vector256.Create(qh >> 12), Vector256.Create(16u));
        v0 = Avx2.ShiftRightLogicalVariable(lowWord, first) & sixteen;
        v1 = Avx2.ShiftRightLogicalVariable(lowWord, second) & sixteen;
        v2 = Avx2.ShiftRightLogicalVariable(highWord, first) & sixteen;
        v3 = Avx2.ShiftRightLogicalVariable(highWord, second) & sixteen;
    }
}
