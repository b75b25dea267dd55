using System.Runtime.InteropServices;

namespace Kangaroo.Native.Tests.Numerics;

/// <summary>The element-type table against ggml's and safetensors' own numbers and names, the exact
/// widenings against the BCL's conversions, and refusals of types the table does not hold.</summary>
public sealed class ElementTypeTests
{
    [Fact]
    public void The_table_has_one_row_per_type_with_ggml_numbers_and_block_geometry()
    {
        Assert.Equal(Enum.GetValues<ElementType>(), ElementTypes.All.Select(t => t.Type));
        // ggml.h's GGML_TYPE_* numbers; block sizes of ggml's type traits (sizeof of the ggml-common.h structs).
        Assert.Equal([(0u, 1, 4), (1u, 1, 2), (30u, 1, 2), (8u, 32, 34), (2u, 32, 18), (3u, 32, 20), (6u, 32, 22), (7u, 32, 24),
            (10u, 256, 84), (11u, 256, 110), (12u, 256, 144), (13u, 256, 176), (14u, 256, 210)],
            ElementTypes.All.Select(t => (t.GgmlId, t.BlockLength, t.BlockBytes)));
        foreach (var info in ElementTypes.All)
        {
            Assert.Equal(info.Type, ElementTypes.FromGgmlId(info.GgmlId));
            Assert.Equal(info.Type, ElementTypes.Parse(info.Name.ToUpperInvariant()));
            Assert.Equal(info.Type.ToString().ToLowerInvariant(), info.Name);
            Assert.Equal(info.Format is not null, info.Type.IsQuantized());
            if (info.Format is { } format) Assert.Equal((info.Type, info.BlockLength, info.BlockBytes), (format.Type, format.BlockLength, format.BlockBytes));
        }
        Assert.Null(ElementTypes.FromGgmlId(15)); // Q8_K: ggml's intermediate type, never a stored one here
        Assert.Null(ElementTypes.FromGgmlId(23)); // IQ4_XS
        Assert.True(ElementTypes.TryParseSafeTensors("BF16", out var bf16) && bf16 == ElementType.BF16);
        Assert.False(ElementTypes.TryParseSafeTensors("Q8_0", out _));
        Assert.False(ElementTypes.TryParseSafeTensors("f32", out _)); // safetensors spells names in upper case
    }

    [Fact]
    public void A_type_outside_the_table_is_refused_by_name()
    {
        var unknown = (ElementType)99;
        Assert.Contains("99", Assert.Throws<NotSupportedException>(() => unknown.BlockBytes()).Message);
        Assert.Contains("99", Assert.Throws<NotSupportedException>(() => ElementTypes.ToFloats(unknown, new byte[4], new float[1])).Message);
        Assert.Contains("F16", Assert.Throws<NotSupportedException>(() => ElementType.F16.Format()).Message);
        Assert.Contains("iq4_xs", Assert.Throws<ArgumentException>(() => ElementTypes.Parse("iq4_xs")).Message);
    }

    [Fact]
    public void Every_16_bit_pattern_widens_exactly_and_the_loader_agrees()
    {
        var bits = Enumerable.Range(0, 1 << 16).Select(i => (ushort)i).ToArray();
        var bytes = MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
        var exact = new float[bits.Length];
        var loader = new float[bits.Length];
        ElementTypes.ToFloats(ElementType.F16, bytes, exact);
        TensorData.Widen(ElementType.F16, bytes, loader); // System.Numerics.Tensors' vectorised conversion
        for (var i = 0; i < bits.Length; i++)
        {
            var expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(exact[i]) && float.IsNaN(loader[i])
                : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(exact[i]) && BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(loader[i]),
                $"f16 0x{bits[i]:x4}: {exact[i]:R} / {loader[i]:R}, expected {expected:R}");
        }
        ElementTypes.ToFloats(ElementType.BF16, bytes, exact);
        for (var i = 0; i < bits.Length; i++) Assert.Equal(bits[i] << 16, BitConverter.SingleToInt32Bits(exact[i]));
    }
}
