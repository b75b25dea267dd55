using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q2_K (<see cref="Q2_KFormat"/>) for the cpu tiles: 16 sub-blocks of 16; sub-block j (half h = j / 8,
/// k = j % 8 / 2, values l = 16 (j % 2) .. + 15) has its quants at bit 2k of 16 consecutive bytes of qs
/// (16 + 32h + l), its scale d sc_j and offset -(dmin m_j) from the nibbles of byte j.</summary>
internal readonly struct Q2_KBlocks : IQuantizedBlocks
{
    public static int BlockLength => Q2_KFormat.BlockLength;
    public static int BlockBytes => Q2_KFormat.BlockBytes;
    public static int SubLength => 16;
    public static bool HasOffsets => true;

    /// <summary>The bytes zero-extended to 32-bit lanes, shifted and masked to their 2 bits and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(block + 16 + 32 * (j >> 3) + 16 * (j & 1)));
        low = Avx512F.ConvertToVector512Single(Vector512.ShiftRightLogical(bytes, (2 * ((j & 7) >> 1))) & Vector512.Create(3));
        high = default;
    }

    /// <summary>The same 8 bytes at a time, zero-extended from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var q = block + 16 + 32 * (j >> 3) + 16 * (j & 1);
        var shift = (2 * ((j & 7) >> 1));
        low = Vector512.Create(Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(q), shift) & Vector256.Create(3)),
            Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(q + 8), shift) & Vector256.Create(3)));
        high = default;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)(block + 80)] * (block[j] & 0xF);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Offset(byte* block, int j, float* halves) => -(halves[*(ushort*)(block + 82)] * (block[j] >> 4));
}
