using System.Buffers.Binary;

namespace Kangaroo.Native.Tests.Numerics;

/// <summary>
/// ggml's definition of each block type, transcribed here from ggml-common.h (the block structs, as byte
/// offsets) and ggml-quants.c (dequantize_row_*, one block), loop for loop and in ggml's float operations,
/// without the product's code: what <see cref="IBlockFormat.Dequantize"/> is tested against.
/// </summary>
internal static class GgmlDequantize
{
    private static float Fp16(ReadOnlySpan<byte> x, int offset) => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(x[offset..]));

    /// <summary>The values of one block of <paramref name="type"/>.</summary>
    public static float[] Block(ElementType type, ReadOnlySpan<byte> x) => type switch
    {
        ElementType.Q4_0 => Q4_0(x),
        ElementType.Q4_1 => Q4_1(x),
        ElementType.Q5_0 => Q5_0(x),
        ElementType.Q5_1 => Q5_1(x),
        ElementType.Q8_0 => Q8_0(x),
        ElementType.Q2_K => Q2_K(x),
        ElementType.Q3_K => Q3_K(x),
        ElementType.Q4_K => Q4_K(x),
        ElementType.Q5_K => Q5_K(x),
        ElementType.Q6_K => Q6_K(x),
        _ => throw new ArgumentException($"{type} is not a ggml block type"),
    };

    // block_q4_0 { ggml_half d; uint8_t qs[16]; }
    private static float[] Q4_0(ReadOnlySpan<byte> x)
    {
        var y = new float[32];
        var d = Fp16(x, 0);
        var qs = x[2..];
        for (var j = 0; j < 16; ++j)
        {
            var x0 = (qs[j] & 0x0F) - 8;
            var x1 = (qs[j] >> 4) - 8;
            y[j + 0] = x0 * d;
            y[j + 16] = x1 * d;
        }
        return y;
    }

    // block_q4_1 { ggml_half d; ggml_half m; uint8_t qs[16]; }
    private static float[] Q4_1(ReadOnlySpan<byte> x)
    {
        var y = new float[32];
        var d = Fp16(x, 0);
        var m = Fp16(x, 2);
        var qs = x[4..];
        for (var j = 0; j < 16; ++j)
        {
            var x0 = qs[j] & 0x0F;
            var x1 = qs[j] >> 4;
            y[j + 0] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
        return y;
    }

    // block_q5_0 { ggml_half d; uint8_t qh[4]; uint8_t qs[16]; }
    private static float[] Q5_0(ReadOnlySpan<byte> x)
    {
        var y = new float[32];
        var d = Fp16(x, 0);
        var qh = BinaryPrimitives.ReadUInt32LittleEndian(x[2..]);
        var qs = x[6..];
        for (var j = 0; j < 16; ++j)
        {
            var xh0 = (byte)(((qh >> (j + 0)) << 4) & 0x10);
            var xh1 = (byte)((qh >> (j + 12)) & 0x10);
            var x0 = ((qs[j] & 0x0F) | xh0) - 16;
            var x1 = ((qs[j] >> 4) | xh1) - 16;
            y[j + 0] = x0 * d;
            y[j + 16] = x1 * d;
        }
        return y;
    }

    // block_q5_1 { ggml_half d; ggml_half m; uint8_t qh[4]; uint8_t qs[16]; }
    private static float[] Q5_1(ReadOnlySpan<byte> x)
    {
        var y = new float[32];
        var d = Fp16(x, 0);
        var m = Fp16(x, 2);
        var qh = BinaryPrimitives.ReadUInt32LittleEndian(x[4..]);
        var qs = x[8..];
        for (var j = 0; j < 16; ++j)
        {
            var xh0 = (byte)(((qh >> (j + 0)) << 4) & 0x10);
            var xh1 = (byte)((qh >> (j + 12)) & 0x10);
            var x0 = (qs[j] & 0x0F) | xh0;
            var x1 = (qs[j] >> 4) | xh1;
            y[j + 0] = x0 * d + m;
            y[j + 16] = x1 * d + m;
        }
        return y;
    }

    // block_q8_0 { ggml_half d; int8_t qs[32]; }
    private static float[] Q8_0(ReadOnlySpan<byte> x)
    {
        var y = new float[32];
        var d = Fp16(x, 0);
        for (var j = 0; j < 32; ++j) y[j] = (sbyte)x[2 + j] * d;
        return y;
    }

    // block_q2_K { uint8_t scales[16]; uint8_t qs[64]; ggml_half d; ggml_half dmin; }
    private static float[] Q2_K(ReadOnlySpan<byte> x)
    {
        var y = new float[256];
        var at = 0;
        var d = Fp16(x, 80);
        var min = Fp16(x, 82);
        var q = 16;
        var scale = 0;
        for (var n = 0; n < 256; n += 128)
        {
            var shift = 0;
            for (var j = 0; j < 4; ++j)
            {
                var sc = x[scale++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (var l = 0; l < 16; ++l) y[at++] = dl * (sbyte)((x[q + l] >> shift) & 3) - ml;
                sc = x[scale++];
                dl = d * (sc & 0xF);
                ml = min * (sc >> 4);
                for (var l = 0; l < 16; ++l) y[at++] = dl * (sbyte)((x[q + l + 16] >> shift) & 3) - ml;
                shift += 2;
            }
            q += 32;
        }
        return y;
    }

    // block_q3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; ggml_half d; }
    private static float[] Q3_K(ReadOnlySpan<byte> x)
    {
        const uint kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
        var y = new float[256];
        var at = 0;
        var dAll = Fp16(x, 108);
        var aux = new uint[4];
        for (var i = 0; i < 3; i++) aux[i] = BinaryPrimitives.ReadUInt32LittleEndian(x[(96 + 4 * i)..]);
        var tmp = aux[2];
        aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
        aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
        aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
        aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
        var scales = aux.SelectMany(BitConverter.GetBytes).Select(b => (sbyte)b).ToArray();
        var q = 32;
        byte m = 1;
        var scale = 0;
        for (var n = 0; n < 256; n += 128)
        {
            var shift = 0;
            for (var j = 0; j < 4; ++j)
            {
                float dl = dAll * (scales[scale++] - 32);
                for (var l = 0; l < 16; ++l) y[at++] = dl * ((sbyte)((x[q + l + 0] >> shift) & 3) - ((x[l + 0] & m) != 0 ? 0 : 4));
                dl = dAll * (scales[scale++] - 32);
                for (var l = 0; l < 16; ++l) y[at++] = dl * ((sbyte)((x[q + l + 16] >> shift) & 3) - ((x[l + 16] & m) != 0 ? 0 : 4));
                shift += 2;
                m <<= 1;
            }
            q += 32;
        }
        return y;
    }

    // get_scale_min_k4
    private static (byte D, byte M) ScaleMinK4(int j, ReadOnlySpan<byte> q) => j < 4
        ? ((byte)(q[j] & 63), (byte)(q[j + 4] & 63))
        : ((byte)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)), (byte)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4)));

    // block_q4_K { ggml_half d; ggml_half dmin; uint8_t scales[12]; uint8_t qs[128]; }
    private static float[] Q4_K(ReadOnlySpan<byte> x)
    {
        var y = new float[256];
        var at = 0;
        var q = 16;
        var d = Fp16(x, 0);
        var min = Fp16(x, 2);
        var scales = x.Slice(4, 12);
        var scale = 0;
        for (var j = 0; j < 256; j += 64)
        {
            var (sc, m) = ScaleMinK4(scale + 0, scales);
            float d1 = d * sc, m1 = min * m;
            (sc, m) = ScaleMinK4(scale + 1, scales);
            float d2 = d * sc, m2 = min * m;
            for (var l = 0; l < 32; ++l) y[at++] = d1 * (x[q + l] & 0xF) - m1;
            for (var l = 0; l < 32; ++l) y[at++] = d2 * (x[q + l] >> 4) - m2;
            q += 32;
            scale += 2;
        }
        return y;
    }

    // block_q5_K { ggml_half d; ggml_half dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; }
    private static float[] Q5_K(ReadOnlySpan<byte> x)
    {
        var y = new float[256];
        var at = 0;
        var ql = 48;
        const int qh = 16;
        var d = Fp16(x, 0);
        var min = Fp16(x, 2);
        var scales = x.Slice(4, 12);
        var scale = 0;
        byte u1 = 1, u2 = 2;
        for (var j = 0; j < 256; j += 64)
        {
            var (sc, m) = ScaleMinK4(scale + 0, scales);
            float d1 = d * sc, m1 = min * m;
            (sc, m) = ScaleMinK4(scale + 1, scales);
            float d2 = d * sc, m2 = min * m;
            for (var l = 0; l < 32; ++l) y[at++] = d1 * ((x[ql + l] & 0xF) + ((x[qh + l] & u1) != 0 ? 16 : 0)) - m1;
            for (var l = 0; l < 32; ++l) y[at++] = d2 * ((x[ql + l] >> 4) + ((x[qh + l] & u2) != 0 ? 16 : 0)) - m2;
            ql += 32;
            scale += 2;
            u1 <<= 2;
            u2 <<= 2;
        }
        return y;
    }

    // block_q6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; ggml_half d; }
    private static float[] Q6_K(ReadOnlySpan<byte> x)
    {
        var y = new float[256];
        var d = Fp16(x, 208);
        int ql = 0, qh = 128, sc = 192, at = 0;
        for (var n = 0; n < 256; n += 128)
        {
            for (var l = 0; l < 32; ++l)
            {
                var scale = l / 16;
                var q1 = (sbyte)((x[ql + l + 0] & 0xF) | (((x[qh + l] >> 0) & 3) << 4)) - 32;
                var q2 = (sbyte)((x[ql + l + 32] & 0xF) | (((x[qh + l] >> 2) & 3) << 4)) - 32;
                var q3 = (sbyte)((x[ql + l + 0] >> 4) | (((x[qh + l] >> 4) & 3) << 4)) - 32;
                var q4 = (sbyte)((x[ql + l + 32] >> 4) | (((x[qh + l] >> 6) & 3) << 4)) - 32;
                y[at + l + 0] = d * (sbyte)x[sc + scale + 0] * q1;
                y[at + l + 32] = d * (sbyte)x[sc + scale + 2] * q2;
                y[at + l + 64] = d * (sbyte)x[sc + scale + 4] * q3;
                y[at + l + 96] = d * (sbyte)x[sc + scale + 6] * q4;
            }
            at += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
        return y;
    }
}
