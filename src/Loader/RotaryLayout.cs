namespace Kangaroo.Native.Loader;

/// <summary>
/// The two orders in which checkpoints keep each attention head's rows of the q and k projections.
/// The engine rotates halves (dimension i with i + head/2), as Hugging Face does; llama2.c and
/// llama.cpp (GGUF) rotate adjacent pairs (2i with 2i + 1), so their rows are permuted on import and
/// export, exactly as Hugging Face's and llama.cpp's conversion scripts do. Rows move whole, so the
/// elements may be floats or the bytes of a row of quantized blocks.
/// </summary>
public static class RotaryLayout
{
    /// <summary>Rows in adjacent-pair order (2i, 2i+1) to halves order (i, i + head/2).</summary>
    public static T[] ToHalves<T>(ReadOnlySpan<T> weight, int heads, int headDim)
    {
        var result = new T[weight.Length];
        Permute(weight, result, heads, headDim, toHalves: true);
        return result;
    }

    /// <summary>As <see cref="ToHalves{T}(ReadOnlySpan{T}, int, int)"/>, into <paramref name="destination"/> (as long as the weight).</summary>
    public static void ToHalves<T>(ReadOnlySpan<T> weight, Span<T> destination, int heads, int headDim) => Permute(weight, destination, heads, headDim, toHalves: true);

    /// <summary>Rows in halves order to adjacent-pair order, into <paramref name="destination"/> (as long as the weight):
    /// the inverse of <see cref="ToHalves{T}(ReadOnlySpan{T}, int, int)"/>.</summary>
    public static void ToAdjacentPairs<T>(ReadOnlySpan<T> weight, Span<T> destination, int heads, int headDim) => Permute(weight, destination, heads, headDim, toHalves: false);

    private static void Permute<T>(ReadOnlySpan<T> weight, Span<T> destination, int heads, int headDim, bool toHalves)
    {
        if (heads <= 0 || headDim % 2 != 0 || weight.Length % (heads * headDim) != 0)
            throw new ArgumentException($"{weight.Length} elements are not {heads} heads of {headDim} rows");
        if (destination.Length != weight.Length) throw new ArgumentException($"{destination.Length} elements to hold {weight.Length}");
        var rowLength = weight.Length / (heads * headDim);
        var half = headDim / 2;
        for (var h = 0; h < heads; h++)
        for (var i = 0; i < half; i++)
        for (var part = 0; part < 2; part++)
        {
            var pairs = (h * headDim + 2 * i + part) * rowLength;
            var halves = (h * headDim + part * half + i) * rowLength;
            var (source, target) = toHalves ? (pairs, halves) : (halves, pairs);
            weight.Slice(source, rowLength).CopyTo(destination.Slice(target, rowLength));
        }
    }
}
