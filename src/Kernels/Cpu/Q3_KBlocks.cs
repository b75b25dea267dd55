using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q3_K (<see cref="Q3_KFormat"/>) for the cpu tiles: 16 sub-blocks of 16; sub-block j (half h = j / 8,
/// k = j % 8 / 2, values l = 16 (j % 2) .. + 15) has its low 2 bits at bit 2k of 16 consecutive bytes of qs
/// (32 + 32h + l) and its high bit at bit 4h + k of 16 consecutive bytes of hmask (l); value = (d sc_j) (q - 4)
/// with sc_j the 6-bit signed scale (<see cref="PackedScales.SignedScale"/>).</summary>
internal readonly struct Q3_KBlocks : IQuantizedBlocks
{
    public static int BlockLength => Q3_KFormat.BlockLength;
    public static int BlockBytes => Q3_KFormat.BlockBytes;
    public static int SubLength => 16;
    public static bool HasOffsets => false;

    /// <summary>Both byte runs zero-extended to 32-bit lanes, shifted and masked to their bits, combined,
    /// offset by 4 and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (h, k, l) = (j >> 3, (j & 7) >> 1, 16 * (j & 1));
        var pairs = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + 32 + 32 * h + l)), (2 * k));
        var mask = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + l)), (4 * h + k));
        low = Avx512F.ConvertToVector512Single(((pairs & Vector512.Create(3)) | Avx512F.ShiftLeftLogical(mask & Vector512.Create(1), 2)) - Vector512.Create(4));
        high = default;
    }

    /// <summary>The same 8 bytes at a time, zero-extended from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (h, k, l) = (j >> 3, (j & 7) >> 1, 16 * (j & 1));
        var qs = block + 32 + 32 * h + l;
        var hmask = block + l;
        var (pairShift, maskShift) = ((2 * k), (4 * h + k));
        low = Vector512.Create(Quants8(qs, hmask, pairShift, maskShift), Quants8(qs + 8, hmask + 8, pairShift, maskShift));
        high = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> Quants8(byte* qs, byte* hmask, int pairShift, int maskShift) => Avx.ConvertToVector256Single(
        ((Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(qs), pairShift) & Vector256.Create(3))
        | Avx2.ShiftLeftLogical(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(hmask), maskShift) & Vector256.Create(1), 2)) - Vector256.Create(4));

    /// <summary>d sc_j: sc_j's low 4 bits in the low nibble of packed byte j (j &lt; 8) or the high nibble of
    /// byte j - 8, its top 2 at bits 2 (j / 4) of byte 8 + j % 4 (the packed bytes start at 96), less 32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves)
    {
        var packed = block + 96;
        var low = j < 8 ? packed[j] & 0xF : packed[j - 8] >> 4;
        return halves[*(ushort*)(block + 108)] * ((low | (packed[8 + (j & 3)] >> (2 * (j >> 2)) & 3) << 4) - 32);
    }

    public static unsafe float Offset(byte* block, int j, float* halves) => 0f;
}
