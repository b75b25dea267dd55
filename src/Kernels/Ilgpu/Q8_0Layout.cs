using ILGPU;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Kernels.Ilgpu;

/// <summary>Q8_0 (<see cref="Q8_0Format"/>) for <see cref="ScaleAndWords{TLayout}"/>: per block an f16 scale d
/// (first) and 8 words of int8 quants; value = d * q, no offset. Units 0..7 of a block are its words.</summary>
internal readonly struct Q8_0Layout : IScaleAndWordsLayout
{
    public int BlockLength => Q8_0Format.BlockLength;
    public int BlockBytes => Q8_0Format.BlockBytes;
    public int ScaleAt => 0;

    public float Read4(ArrayView<int> words, long block, int unit, float d, out float q0, out float q1, out float q2, out float q3)
    {
        var word = words[block + unit];
        q0 = (word << 24) >> 24;
        q1 = (word << 16) >> 24;
        q2 = (word << 8) >> 24;
        q3 = word >> 24;
        return d;
    }
}
