namespace Kangaroo.Native.Numerics;

/// <summary>
/// One block-quantized format: a row is cut into blocks of <see cref="BlockLength"/> values stored in
/// <see cref="BlockBytes"/> bytes each. Implementations are the format's definition, one block at a
/// time, as ggml writes it (<c>dequantize_row_*</c>, <c>quantize_row_*_ref</c>); the kernels' faster
/// forms are tested against them. Adding a format is one implementation and one row of
/// <see cref="ElementTypes"/>.
/// </summary>
public interface IBlockFormat
{
    /// <summary>The element type this format stores.</summary>
    ElementType Type { get; }

    /// <summary>Values per block.</summary>
    int BlockLength { get; }

    /// <summary>Bytes per block.</summary>
    int BlockBytes { get; }

    /// <summary>The block's values, exactly as the format defines them.</summary>
    void Dequantize(ReadOnlySpan<byte> block, Span<float> values);

    /// <summary>Whether <see cref="Quantize"/> exists for this format.</summary>
    bool CanQuantize { get; }

    /// <summary>llama.cpp's reference quantization of one block of finite values; throws
    /// <see cref="ArgumentException"/> when they need a scale the format cannot hold.</summary>
    void Quantize(ReadOnlySpan<float> values, Span<byte> block);

    /// <summary>Whether a scale of the block is NaN or infinite, which makes all its values non-finite.</summary>
    bool HasNonFiniteScale(ReadOnlySpan<byte> block);

    /// <summary>Whether every value of the block is zero.</summary>
    bool IsZero(ReadOnlySpan<byte> block);
}
