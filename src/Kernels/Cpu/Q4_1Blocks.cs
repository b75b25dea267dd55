using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q4_1 (<see cref="Q4_1Format"/>) for the cpu tiles: one sub-block after the f16 scale d and min m,
/// 16 bytes holding value j in the low nibble of byte j and value 16 + j in its high nibble; value = d * q + m.</summary>
internal readonly struct Q4_1Blocks : IQuantizedBlocks
{
    public static int BlockLength => Q4_1Format.BlockLength;
    public static int BlockBytes => Q4_1Format.BlockBytes;
    public static int SubLength => Q4_1Format.BlockLength;
    public static bool HasOffsets => true;

    /// <summary>Each byte zero-extended to a 32-bit lane; a permutation of the table 0..15 by the low
    /// nibble (the index's other bits are ignored), then by the high one.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var values = Vector512.Create(0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f, 9f, 10f, 11f, 12f, 13f, 14f, 15f);
        var bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(block + 4));
        low = Avx512F.PermuteVar16x32(values, bytes);
        high = Avx512F.PermuteVar16x32(values, Avx512F.ShiftRightLogical(bytes, 4));
    }

    /// <summary>Each 8 bytes zero-extended from memory to 32-bit lanes: the low nibbles masked, the high
    /// ones shifted down, both converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (first, second) = (Avx2.ConvertToVector256Int32(block + 4), Avx2.ConvertToVector256Int32(block + 12));
        var mask = Vector256.Create(0x0F);
        low = Vector512.Create(Avx.ConvertToVector256Single(first & mask), Avx.ConvertToVector256Single(second & mask));
        high = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(first, 4)), Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(second, 4)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)block];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Offset(byte* block, int j, float* halves) => halves[*(ushort*)(block + 2)];
}
