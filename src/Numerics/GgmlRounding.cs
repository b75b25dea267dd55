namespace Kangaroo.Native.Numerics;

/// <summary>
/// The helpers of ggml's reference quantization (ggml-quants.c: nearest_int, make_qx_quants, make_q3_quants,
/// make_qkx2_quants, and the scale searches of the 32-value types), each in the one form the reference quantizers of
/// this engine's types call. Every float operation is ggml's, in its order and in float32 (C# does not
/// fuse multiply-adds on its own), so that blocks equal what llama.cpp's quantizer writes byte for byte.
/// </summary>
internal static class GgmlRounding
{
    /// <summary>GROUP_MAX_EPS: a group whose largest magnitude is below this is all zeros.</summary>
    private const float GroupMaxEps = 1e-15f;

    /// <summary>nearest_int: adding 1.5 * 2^23 rounds to an integer (ties to even) in the mantissa,
    /// which is read back; exact for |value| up to 2^22 and, beyond, the same bits as ggml's.</summary>
    public static int NearestInt(float value) => (BitConverter.SingleToInt32Bits(value + 12582912f) & 0x007FFFFF) - 0x00400000;

    /// <summary>make_qx_quants with rmse_type 1 and no importance weights: symmetric quants
    /// L in [0, 2 nmax) (value = scale * (L - nmax)) chosen by weighted least squares (weights x^2) over
    /// 19 candidate scales; returns the scale.</summary>
    public static float SymmetricQuants(int nmax, ReadOnlySpan<float> x, Span<sbyte> levels)
    {
        if (IsNegligible(x, levels, out var max)) return 0f;
        var (sumlx, suml2) = WeightedSums(nmax, -nmax / max, x, levels, bias: nmax);
        var scale = suml2 != 0f ? sumlx / suml2 : 0f;
        var best = scale * sumlx;
        for (var step = -9; step <= 9; step++)
        {
            if (step == 0) continue;
            var iscale = -(nmax + 0.1f * step) / max;
            (sumlx, suml2) = WeightedSums(nmax, iscale, x, [], bias: 0);
            if (suml2 > 0 && sumlx * sumlx > best * suml2)
            {
                for (var i = 0; i < x.Length; i++) levels[i] = (sbyte)(nmax + Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        return scale;
    }

    /// <summary>make_q3_quants with do_rmse: symmetric quants L in [0, 2 nmax) refined one value at a time
    /// (up to 5 passes) while the weighted (x^2) least-squares fit improves; returns the scale.</summary>
    public static float RefinedSymmetricQuants(int nmax, ReadOnlySpan<float> x, Span<sbyte> levels)
    {
        if (IsNegligible(x, levels, out var max)) return 0f;
        var (sumlx, suml2) = WeightedSums(nmax, -nmax / max, x, levels, bias: 0);
        for (var pass = 0; pass < 5; pass++)
        {
            var changed = 0;
            for (var i = 0; i < x.Length; i++)
            {
                var w = x[i] * x[i];
                var slx = sumlx - w * x[i] * levels[i];
                if (!(slx > 0)) continue; // as ggml's (slx > 0), NaN included
                var sl2 = suml2 - w * levels[i] * levels[i];
                var l = Math.Clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (l == levels[i]) continue;
                slx += w * x[i] * l;
                sl2 += w * l * l;
                if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2)
                {
                    levels[i] = (sbyte)l;
                    (sumlx, suml2) = (slx, sl2);
                    changed++;
                }
            }
            if (changed == 0) break;
        }
        for (var i = 0; i < x.Length; i++) levels[i] += (sbyte)nmax;
        return sumlx / suml2;
    }

    /// <summary>make_qkx2_quants with squared errors: quants L in [0, nmax] and a min (value = scale * L - min,
    /// min at least 0) fitted by weighted least squares over nstep + 1 candidate scales
    /// (nmax + rmin + rdelta * step over the range); returns the scale and sets <paramref name="theMin"/>.</summary>
    public static float AffineQuants(int nmax, ReadOnlySpan<float> x, ReadOnlySpan<float> weights, Span<byte> levels, out float theMin,
        float rmin, float rdelta, int nstep)
    {
        var n = x.Length;
        Span<byte> candidate = stackalloc byte[n];
        var (min, max) = (x[0], x[0]);
        var sumW = weights[0];
        var sumX = sumW * x[0];
        for (var i = 1; i < n; i++)
        {
            if (x[i] < min) min = x[i];
            if (x[i] > max) max = x[i];
            sumW += weights[i];
            sumX += weights[i] * x[i];
        }
        if (min > 0) min = 0;
        if (max == min)
        {
            levels[..n].Clear();
            theMin = -min;
            return 0f;
        }
        var iscale = nmax / (max - min);
        var scale = 1 / iscale;
        var bestError = 0f;
        for (var i = 0; i < n; i++)
        {
            levels[i] = (byte)Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
            var diff = scale * levels[i] + min - x[i];
            bestError += weights[i] * (diff * diff);
        }
        for (var step = 0; step <= nstep; step++)
        {
            iscale = (rmin + rdelta * step + nmax) / (max - min);
            var (sumL, sumL2, sumXL) = (0f, 0f, 0f);
            for (var i = 0; i < n; i++)
            {
                var l = Math.Clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
                candidate[i] = (byte)l;
                var w = weights[i];
                sumL += w * l;
                sumL2 += w * l * l;
                sumXL += w * l * x[i];
            }
            var determinant = sumW * sumL2 - sumL * sumL;
            if (!(determinant > 0)) continue;
            var thisScale = (sumW * sumXL - sumX * sumL) / determinant;
            var thisMin = (sumL2 * sumX - sumL * sumXL) / determinant;
            if (thisMin > 0)
            {
                thisMin = 0;
                thisScale = sumXL / sumL2;
            }
            var error = 0f;
            for (var i = 0; i < n; i++)
            {
                var diff = thisScale * candidate[i] + thisMin - x[i];
                error += weights[i] * (diff * diff);
            }
            if (error < bestError)
            {
                candidate.CopyTo(levels);
                bestError = error;
                scale = thisScale;
                min = thisMin;
            }
        }
        theMin = -min;
        return scale;
    }

    /// <summary>The first value of largest magnitude, with its sign (ggml keeps the first on ties), and that
    /// magnitude <paramref name="amax"/>; 0 for an all-zero span. Also the scale search of Q4_0 and Q5_0.</summary>
    public static float FirstLargest(ReadOnlySpan<float> x, out float amax)
    {
        var max = amax = 0f;
        foreach (var v in x)
            if (MathF.Abs(v) > amax) (amax, max) = (MathF.Abs(v), v);
        return max;
    }

    /// <summary>The smallest and largest value, from float.MaxValue and -float.MaxValue as ggml starts them
    /// (the range search of Q4_1 and Q5_1).</summary>
    public static (float Min, float Max) Range(ReadOnlySpan<float> x)
    {
        var (min, max) = (float.MaxValue, -float.MaxValue);
        foreach (var v in x)
        {
            if (v < min) min = v;
            if (v > max) max = v;
        }
        return (min, max);
    }

    /// <summary>The start of both symmetric quantizers: whether the group is all below <see cref="GroupMaxEps"/> (its
    /// levels then cleared), and <paramref name="max"/>, its first value of largest magnitude.</summary>
    private static bool IsNegligible(ReadOnlySpan<float> x, Span<sbyte> levels, out float max)
    {
        max = FirstLargest(x, out var amax);
        if (amax >= GroupMaxEps) return false;
        levels[..x.Length].Clear();
        return true;
    }

    /// <summary>The weighted (w = x^2) least-squares sums sum w x l and sum w l^2 of the symmetric quants
    /// l = clamp(nearest(iscale x), -nmax, nmax - 1); l + <paramref name="bias"/> is written to
    /// <paramref name="levels"/> unless it is empty.</summary>
    private static (float SumLx, float SumL2) WeightedSums(int nmax, float iscale, ReadOnlySpan<float> x, Span<sbyte> levels, int bias)
    {
        var (sumlx, suml2) = (0f, 0f);
        for (var i = 0; i < x.Length; i++)
        {
            var l = Math.Clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
            if (!levels.IsEmpty) levels[i] = (sbyte)(l + bias);
            var w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        return (sumlx, suml2);
    }
}
