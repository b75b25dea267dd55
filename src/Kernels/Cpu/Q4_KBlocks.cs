using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q4_K (<see cref="Q4_KFormat"/>) for the cpu tiles: 8 sub-blocks of 32; sub-block j's quants are
/// the low (j even) or high (j odd) nibbles of bytes 16 + 32 (j / 2) .. + 31, its scale d sc_j and its offset
/// -(dmin m_j), with sc_j and m_j unpacked from 6 bits (<see cref="PackedScales.ScaleAndMin"/>).</summary>
internal readonly struct Q4_KBlocks : IQuantizedBlocks
{
    public static int BlockLength => Q4_KFormat.BlockLength;
    public static int BlockBytes => Q4_KFormat.BlockBytes;
    public static int SubLength => 32;
    public static bool HasOffsets => true;

    /// <summary>Each byte zero-extended to a 32-bit lane (shifted down 4 for the high nibbles); a permutation
    /// of the table 0..15 reads the low 4 bits of each lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var values = Vector512.Create(0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f);
        var q = block + 16 + 32 * (j >> 1);
        var shift = (4 * (j & 1));
        low = Avx512F.PermuteVar16x32(values, Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(q)), shift));
        high = Avx512F.PermuteVar16x32(values, Vector512.ShiftRightLogical(Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16)), shift));
    }

    /// <summary>Each 8 bytes zero-extended from memory, shifted, masked to their nibble and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var q = block + 16 + 32 * (j >> 1);
        var shift = (4 * (j & 1));
        var mask = Vector256.Create(0x0F);
        low = Vector512.Create(Nibbles(q, shift, mask), Nibbles(q + 8, shift, mask));
        high = Vector512.Create(Nibbles(q + 16, shift, mask), Nibbles(q + 24, shift, mask));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> Nibbles(byte* q, int shift, Vector256<int> mask) =>
        Avx.ConvertToVector256Single(Vector256.ShiftRightLogical(Avx2.ConvertToVector256Int32(q), shift) & mask);

    /// <summary>d sc_j: sub-blocks 0-3 keep sc_j in the low 6 bits of packed byte j; 4-7 its low 4 bits in
    /// byte j + 4 and its top 2 in the top of byte j - 4 (the packed bytes start at 4).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) =>
        halves[*(ushort*)block] * (j < 4 ? block[4 + j] & 63 : block[8 + j] & 0xF | block[j] >> 6 << 4);

    /// <summary>-(dmin m_j): m_j in the low 6 bits of packed byte j + 4, or (4-7) the high nibble of byte
    /// j + 4 and the top 2 bits of byte j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Offset(byte* block, int j, float* halves) =>
        -(halves[*(ushort*)(block + 2)] * (j < 4 ? block[8 + j] & 63 : block[8 + j] >> 4 | block[4 + j] >> 6 << 4));
}
