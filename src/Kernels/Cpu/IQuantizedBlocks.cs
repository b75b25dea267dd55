using System.Runtime.Intrinsics;

namespace Kangaroo.Native.Kernels.Cpu;

/// <summary>
/// A block-quantized type as the <see cref="BlockTiles"/> read it. A block of <see cref="BlockLength"/>
/// values in <see cref="BlockBytes"/> bytes is a sequence of sub-blocks of <see cref="SubLength"/> values
/// (32 for Q8_0 and Q4_0, 16 or 32 for the K-quants' super-blocks), and value i of sub-block j is
/// a_j * q_i + b_j: q small integers (exact as floats), a_j a scale (<see cref="Scale"/>) and b_j an offset
/// (<see cref="Offset"/>; none where <see cref="HasOffsets"/> is false, and then no offset term is added).
/// Each value is exactly what the type's <see cref="Numerics.IBlockFormat"/> defines. Members are static,
/// so the tiles are compiled once per type with its constants folded in.
/// </summary>
internal interface IQuantizedBlocks
{
    static abstract int BlockLength { get; }

    static abstract int BlockBytes { get; }

    /// <summary>Values per sub-block: 32 (quants in two 16-lane vectors) or 16 (one).</summary>
    static abstract int SubLength { get; }

    static abstract bool HasOffsets { get; }

    /// <summary>The quants of sub-block <paramref name="j"/> of the block at <paramref name="block"/> as
    /// floats, exactly: <paramref name="low"/> holds values 0..15, <paramref name="high"/> 16..31 (unused
    /// for 16-value sub-blocks). With AVX-512.</summary>
    static abstract unsafe void QuantsAvx512(byte* block, int j, out Vector512<float> low, out Vector512<float> high);

    /// <summary>The same with AVX2 only, 8 lanes at a time (a 16-lane vector is then a register pair).</summary>
    static abstract unsafe void QuantsAvx2(byte* block, int j, out Vector512<float> low, out Vector512<float> high);

    /// <summary>a_j; <paramref name="halves"/> is <see cref="F16Widening.Halves"/>, for f16 scales.</summary>
    static abstract unsafe float Scale(byte* block, int j, float* halves);

    /// <summary>b_j (0 where <see cref="HasOffsets"/> is false).</summary>
    static abstract unsafe float Offset(byte* block, int j, float* halves);
}
