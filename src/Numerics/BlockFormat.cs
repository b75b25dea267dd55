namespace Kangaroo.Native.Numerics;

/// <summary>What the block formats share: their type and geometry, given once to the constructor, and the zero
/// check by dequantizing (formats whose zero blocks have one pattern override <see cref="IsZero"/>).</summary>
/// <param name="type">The element type the format stores.</param>
/// <param name="blockLength">Values per block.</param>
/// <param name="blockBytes">Bytes per block.</param>
public abstract class BlockFormat(ElementType type, int blockLength, int blockBytes) : IBlockFormat
{
    /// <inheritdoc/>
    public ElementType Type => type;

    int IBlockFormat.BlockLength => blockLength;

    int IBlockFormat.BlockBytes => blockBytes;

    /// <inheritdoc/>
    public virtual bool CanQuantize => true;

    /// <inheritdoc/>
    public abstract void Dequantize(ReadOnlySpan<byte> block, Span<float> values);

    /// <inheritdoc/>
    public abstract void Quantize(ReadOnlySpan<float> values, Span<byte> block);

    /// <inheritdoc/>
    public abstract bool HasNonFiniteScale(ReadOnlySpan<byte> block);

    /// <inheritdoc/>
    public virtual bool IsZero(ReadOnlySpan<byte> block) => BlockScales.DequantizesToZero(this, block);
}
