using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q4_0 (<see cref="Q4_0Format"/>) for the cpu tiles: one sub-block after the f16 scale d, 16
/// bytes holding value j in the low nibble of byte j and value 16 + j in its high nibble; value = d * (q - 8).</summary>
internal readonly struct Q4_0Blocks : IQuantizedBlocks
{
    public static int BlockLength => Q4_0Format.BlockLength;
    public static int BlockBytes => Q4_0Format.BlockBytes;
    public static int SubLength => Q4_0Format.BlockLength;
    public static bool HasOffsets => false;

    /// <summary>Each byte zero-extended to a 32-bit lane; a permutation indexes a table of the 16
    /// values n - 8 by the low nibble (the index's other bits are ignored), then by the high one. Two
    /// table lookups replace masking, offsetting and converting.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var values = Vector512.Create(-8f, -7f, -6f, -5f, -4f, -3f, -2f, -1f, 0f, 1f, 2f, 3f, 4f, 5f, 6f, 7f);
        var bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(block + 2));
        low = Avx512F.PermuteVar16x32(values, bytes);
        high = Avx512F.PermuteVar16x32(values, Avx512F.ShiftRightLogical(bytes, 4));
    }

    /// <summary>Each 8 bytes zero-extended from memory to 32-bit lanes, which hold two quants: the low
    /// nibbles masked, the high ones shifted down, both offset by 8 and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (first, second) = (Avx2.ConvertToVector256Int32(block + 2), Avx2.ConvertToVector256Int32(block + 10));
        var (mask, eight) = (Vector256.Create(0x0F), Vector256.Create(8));
        low = Vector512.Create(Avx.ConvertToVector256Single((first & mask) - eight), Avx.ConvertToVector256Single((second & mask) - eight));
        high = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(first, 4) - eight), Avx.ConvertToVector256Single(Avx2.ShiftRightLogical(second, 4) - eight));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)block];

    public static unsafe float Offset(byte* block, int j, float* halves) => 0f;
}
