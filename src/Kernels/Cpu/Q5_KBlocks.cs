using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q5_K (<see cref="Q5_KFormat"/>) for the cpu tiles: 8 sub-blocks of 32; value i of sub-block j
/// has its low 4 bits in the low (j even) or high (j odd) nibble of byte 48 + 32 (j / 2) + i and its fifth
/// bit at bit j of byte 16 + i; scale and offset as Q4_K's (<see cref="Q4_KBlocks"/>).</summary>
internal readonly struct Q5_KBlocks : IQuantizedBlocks
{
    public static int BlockLength => Q5_KFormat.BlockLength;
    public static int BlockBytes => Q5_KFormat.BlockBytes;
    public static int SubLength => 32;
    public static bool HasOffsets => true;

    /// <summary>The nibbles' and the fifth bits' bytes zero-extended to 32-bit lanes, each shifted to its
    /// bit, masked, or-ed together and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var q = block + 48 + 32 * (j >> 1);
        var shift = (4 * (j & 1));
        low = Avx512F.ConvertToVector512Single(Quants(q, block + 16, shift, j));
        high = Avx512F.ConvertToVector512Single(Quants(q + 16, block + 32, shift, j));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector512<int> Quants(byte* q, byte* fifth, int shift, int j) =>
        (Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(q)), shift) & Vector512.Create(0xF))
        | Avx512F.ShiftLeftLogical(Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(fifth)), j) & Vector512.Create(1), 4);

    /// <summary>The same 8 bytes at a time, zero-extended from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var q = block + 48 + 32 * (j >> 1);
        var shift = (4 * (j & 1));
        low = Vector512.Create(Quants8(q, block + 16, shift, j), Quants8(q + 8, block + 24, shift, j));
        high = Vector512.Create(Quants8(q + 16, block + 32, shift, j), Quants8(q + 24, block + 40, shift, j));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> Quants8(byte* q, byte* fifth, int shift, int j) => Avx.ConvertToVector256Single(
        (Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(q), shift) & Vector256.Create(0xF))
        | Avx2.ShiftLeftLogical(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(fifth), j) & Vector256.Create(1), 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => Q4_KBlocks.Scale(block, j, halves);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Offset(byte* block, int j, float* halves) => Q4_KBlocks.Offset(block, j, halves);
}
