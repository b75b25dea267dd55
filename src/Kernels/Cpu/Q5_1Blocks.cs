using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q5_1 (<see cref="Q5_1Format"/>) for the cpu tiles: one sub-block after the f16 scale d and min m,
/// a 32-bit word qh (bit i: the fifth bit of value i) and 16 bytes of nibbles (value j low, value 16 + j
/// high); value = d * q + m.</summary>
internal readonly struct Q5_1Blocks : IQuantizedBlocks
{
    public static int BlockLength => Q5_1Format.BlockLength;
    public static int BlockBytes => Q5_1Format.BlockBytes;
    public static int SubLength => Q5_1Format.BlockLength;
    public static bool HasOffsets => true;

    /// <summary>Each byte zero-extended to a 32-bit lane, its low (then high) nibble or-ed with the value's
    /// fifth bit (<see cref="FifthBits"/>) and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var bytes = Avx512F.ConvertToVector512Int32(Vector128.Load(block + 8)).AsUInt32();
        FifthBits.In16Lanes(*(uint*)(block + 4), out var fifthLow, out var fifthHigh);
        low = Avx512F.ConvertToVector512Single(((bytes & Vector512.Create(0xFu)) | fifthLow).AsInt32());
        high = Avx512F.ConvertToVector512Single((Avx512F.ShiftRightLogical(bytes, 4) | fifthHigh).AsInt32());
    }

    /// <summary>The same 8 bytes at a time, zero-extended from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var (first, second) = (Avx2.ConvertToVector256Int32(block + 8).AsUInt32(), Avx2.ConvertToVector256Int32(block + 16).AsUInt32());
        FifthBits.In8Lanes(*(uint*)(block + 4), out var v0, out var v1, out var v2, out var v3);
        var mask = Vector256.Create(0xFu);
        low = Vector512.Create(Avx.ConvertToVector256Single(((first & mask) | v0).AsInt32()), Avx.ConvertToVector256Single(((second & mask) | v1).AsInt32()));
        high = Vector512.Create(Avx.ConvertToVector256Single((Avx2.ShiftRightLogical(first, 4) | v2).AsInt32()),
            Avx.ConvertToVector256Single((Avx2.ShiftRightLogical(second, 4) | v3).AsInt32()));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)block];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Offset(byte* block, int j, float* halves) => halves[*(ushort*)(block + 2)];
}
