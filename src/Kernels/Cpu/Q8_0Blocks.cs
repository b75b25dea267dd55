using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>Q8_0 (<see cref="Q8_0Format"/>) for the cpu tiles: one sub-block of 32 int8 quants after the
/// f16 scale d; value = d * q.</summary>
internal readonly struct Q8_0Blocks : IQuantizedBlocks
{
    public static int BlockLength => Q8_0Format.BlockLength;
    public static int BlockBytes => Q8_0Format.BlockBytes;
    public static int SubLength => Q8_0Format.BlockLength;
    public static bool HasOffsets => false;

    /// <summary>Each 16 quants sign-extended to 32-bit lanes and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var q = (sbyte*)block + 2;
        low = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q)));
        high = Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(q + 16)));
    }

    /// <summary>Each 8 quants sign-extended from memory and converted.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high)
    {
        var q = (sbyte*)block + 2;
        low = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q)), Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 8)));
        high = Vector512.Create(Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 16)), Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(q + 24)));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe float Scale(byte* block, int j, float* halves) => halves[*(ushort*)block];

    public static unsafe float Offset(byte* block, int j, float* halves) => 0f;
}
