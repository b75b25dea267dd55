using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q6_K (<see cref="Q6_KFormat"/>) for the cpu tiles: 16 sub-blocks of 16; sub-block j (half h = j / 8,
/// k = j % 8 / 2, values l = 16 (j % 2) .. + 15) has its low 4 bits in 16 consecutive bytes of ql
/// (64h + 32 (k % 2) + l, low nibble for k &lt; 2, high for k &gt;= 2) and its top 2 bits at bit 2k of 16
/// consecutive bytes of qh (128 + 32h + l); value = (d sc_j) (q - 32).</summary>
internal readonly struct Q6_KBlocks : IQuantizedBlocks
{
    public static int BlockLength => Q6_KFormat.BlockLength;
    public static int BlockBytes => Q6_KFormat.BlockBytes;
    public static int SubLength => 16;
    public static bool HasOffsets => false;

    /// <summary>Both byte runs zero-extended to 32-bit lanes, shifted and masked to their bits, combined,
    /// offset by 32 and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (h, k, l) = (j >> 3, (j & 7) >> 1, 16 * (j & 1));
        var nibbles = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + 64 * h + 32 * (k & 1) + l)), (4 * (k >> 1)));
        var top = Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(block + 128 + 32 * h + l)), (2 * k));
        low = Avx512F.ConvertToVector512Single(((nibbles & Vector512.Create(0xF)) | Avx512F.ShiftLeftLogical(top & Vector512.Create(3), 4)) - Vector512.Create(32));
        high = default;
    }

    /// <summary>The same 8 bytes at a time, zero-extended from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (h, k, l) = (j >> 3, (j & 7) >> 1, 16 * (j & 1));
        var ql = block + 64 * h + 32 * (k & 1) + l;
        var qh = block + 128 + 32 * h + l;
        var (nibbleShift, topShift) = ((4 * (k >> 1)), (2 * k));
        low = Vector512.Create(Quants8(ql, qh, nibbleShift, topShift), Quants8(ql + 8, qh + 8, nibbleShift, topShift));
        high = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> Quants8(byte* ql, byte* qh, int nibbleShift, int topShift) => Avx.ConvertToVector256Single(
        ((Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(ql), nibbleShift) & Vector256.Create(0xF))
        | Avx2.ShiftLeftLogical(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(qh), topShift) & Vector256.Create(3), 4)) - Vector256.Create(32));

    /// <summary>d times the sub-block's int8 scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)(block + 208)] * ((sbyte*)block)[192 + j];

    public static unsafe float Offset(byte* block, int j, float* halves) => 0f;
}
