using System.Runtime.InteropServices;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>Comparison against the reference, and test data.</summary>
public static class Numerics
{
    /// <summary>Unit roundoff of float32 (2^-24): one correctly rounded operation errs by at most u relative.</summary>
    public const float U = 5.9604645e-8f;

    /// <summary>Fails unless |actual - expected| &lt;= atol + rtol * |expected| everywhere (NaN only matches NaN);
    /// the message names the worst index, its values and how many elements are out of bounds.</summary>
    public static void AssertClose(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, float rtol, float atol, string what)
    {
        var bounds = new float[expected.Length];
        for (var i = 0; i < bounds.Length; i++) bounds[i] = atol + rtol * MathF.Abs(expected[i]);
        AssertWithin(expected, actual, bounds, what);
    }

    /// <summary>Fails unless |actual[i] - expected[i]| &lt;= bounds[i] for every i (NaN only matches NaN).</summary>
    public static void AssertWithin(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, ReadOnlySpan<float> bounds, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        int failures = 0, worst = -1;
        var worstRatio = 0.0;
        for (var i = 0; i < expected.Length; i++)
        {
            if (float.IsNaN(expected[i]) && float.IsNaN(actual[i])) continue;
            var error = Math.Abs((double)actual[i] - expected[i]);
            var ratio = double.IsNaN(error) ? double.PositiveInfinity : error / Math.Max(bounds[i], float.Epsilon);
            if (error > bounds[i] || double.IsNaN(error)) failures++;
            if (ratio > worstRatio || worst < 0)
            {
                worstRatio = ratio;
                worst = i;
            }
        }
        if (failures > 0)
            Assert.Fail($"{what}: {failures} of {expected.Length} elements out of bounds; worst [{worst}]: got {actual[worst]:R}, " +
                $"expected {expected[worst]:R}, |error| {Math.Abs((double)actual[worst] - expected[worst]):G3} > bound {bounds[worst]:G3}");
    }

    /// <summary>Fails unless the two are equal bit for bit (any NaN matches any NaN).</summary>
    public static void AssertIdentical(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        for (var i = 0; i < expected.Length; i++)
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]) && !(float.IsNaN(expected[i]) && float.IsNaN(actual[i])))
                Assert.Fail($"{what}: not bit-identical at [{i}]: {actual[i]:R} vs {expected[i]:R}");
    }

    public static float[] Random(int length, int seed, float scale = 1f)
    {
        var random = new Random(seed);
        var values = new float[length];
        for (var i = 0; i < length; i++) values[i] = (random.NextSingle() * 2f - 1f) * scale;
        return values;
    }

    /// <summary>The bytes of <paramref name="values"/> stored as <paramref name="type"/> (F16 rounds to nearest,
    /// BF16 truncates), and the floats those bytes widen to.</summary>
    public static (byte[] Bytes, float[] Widened) Encode(float[] values, ElementType type)
    {
        switch (type)
        {
            case ElementType.F32:
                return (MemoryMarshal.AsBytes(values.AsSpan()).ToArray(), values);
            case ElementType.F16:
            {
                var halves = values.Select(v => (Half)v).ToArray();
                return (MemoryMarshal.AsBytes(halves.AsSpan()).ToArray(), halves.Select(h => (float)h).ToArray());
            }
            case ElementType.BF16:
            {
                var bits = values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray();
                return (MemoryMarshal.AsBytes(bits.AsSpan()).ToArray(), bits.Select(b => BitConverter.UInt32BitsToSingle((uint)b << 16)).ToArray());
            }
            default:
                throw ElementTypes.Unsupported(type, "the tests' encoding");
        }
    }

    /// <summary>A device tensor holding <paramref name="values"/>.</summary>
    public static DeviceTensor Tensor(ComputeDevice device, float[] values)
    {
        var tensor = device.Allocate(values.Length);
        device.Upload(values, tensor);
        return tensor;
    }

    /// <summary>A device tensor's values.</summary>
    public static float[] Read(ComputeDevice device, DeviceTensor tensor)
    {
        var values = new float[tensor.Length];
        device.Download(tensor, values);
        return values;
    }

    /// <summary>Asserts that one MatMul over a block of <paramref name="rows"/> random input rows gives
    /// bit for bit what one-row calls give, into the same prior output.</summary>
    public static void AssertBlockMatchesRows(ComputeDevice device, DeviceWeight weight, int rows, bool accumulate, string what)
    {
        var (inDim, outDim) = (weight.Cols, weight.Rows);
        using var input = Tensor(device, Random(rows * inDim, seed: 4));
        var prior = Random(rows * outDim, seed: 6);
        using var batched = Tensor(device, prior);
        using var single = Tensor(device, prior);
        device.MatMul(input, weight, batched, rows, accumulate);
        for (var r = 0; r < rows; r++)
            device.MatMul(input.Slice(r * inDim, inDim), weight, single.Slice(r * outDim, outDim), 1, accumulate);
        AssertIdentical(Read(device, single), Read(device, batched), $"{what}: block vs rows");
    }
}
