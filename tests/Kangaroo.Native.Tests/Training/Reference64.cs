namespace Kangaroo.Native.Tests.Training;

/// <summary>
/// The forward operations of the adapter and its loss in float64, written as plainly as possible:
/// the oracle that gradient checks differentiate numerically. Layouts match the device operations
/// (row-major [rows, width]; weights [out, in]).
/// </summary>
public static class Reference64
{
    public static double[] RmsNorm(double[] x, double[] gamma, int rows, double eps)
    {
        var dim = gamma.Length;
        var y = new double[rows * dim];
        for (var r = 0; r < rows; r++)
        {
            var sum = 0.0;
            for (var i = 0; i < dim; i++) sum += x[r * dim + i] * x[r * dim + i];
            var scale = 1 / Math.Sqrt(sum / dim + eps);
            for (var i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i] * scale * gamma[i];
        }
        return y;
    }

    public static double[] MatMul(double[] x, double[] w, int rows, int inDim, int outDim)
    {
        var y = new double[rows * outDim];
        for (var r = 0; r < rows; r++)
        for (var o = 0; o < outDim; o++)
        {
            var sum = 0.0;
            for (var i = 0; i < inDim; i++) sum += x[r * inDim + i] * w[o * inDim + i];
            y[r * outDim + o] = sum;
        }
        return y;
    }

    /// <summary>Hugging Face rotary embedding: pair (i, i + headDim/2) of each head at position
    /// startPos + r rotated by (startPos + r) * theta^(-2i/headDim).</summary>
    public static double[] Rope(double[] x, int rows, int heads, int headDim, int startPos, double theta)
    {
        var y = (double[])x.Clone();
        var half = headDim / 2;
        for (var r = 0; r < rows; r++)
        for (var h = 0; h < heads; h++)
        for (var i = 0; i < half; i++)
        {
            var angle = (startPos + r) * Math.Pow(theta, -2.0 * i / headDim);
            var at = (r * heads + h) * headDim + i;
            double x0 = x[at], x1 = x[at + half], c = Math.Cos(angle), s = Math.Sin(angle);
            y[at] = x0 * c - x1 * s;
            y[at + half] = x0 * s + x1 * c;
        }
        return y;
    }

    /// <summary>Causal grouped-query attention; keys and values hold positions 0..startPos + rows - 1.</summary>
    public static double[] Attention(double[] q, double[] k, double[] v, int rows, int startPos, int heads, int kvHeads, int headDim)
    {
        var output = new double[rows * heads * headDim];
        var kvDim = kvHeads * headDim;
        var group = heads / kvHeads;
        var scale = 1 / Math.Sqrt(headDim);
        for (var r = 0; r < rows; r++)
        for (var h = 0; h < heads; h++)
        {
            var length = startPos + r + 1;
            var scores = new double[length];
            var kv = h / group * headDim;
            for (var t = 0; t < length; t++)
            {
                var dot = 0.0;
                for (var d = 0; d < headDim; d++) dot += q[(r * heads + h) * headDim + d] * k[t * kvDim + kv + d];
                scores[t] = dot * scale;
            }
            var max = scores.Max();
            var sum = 0.0;
            for (var t = 0; t < length; t++) sum += scores[t] = Math.Exp(scores[t] - max);
            for (var t = 0; t < length; t++)
            for (var d = 0; d < headDim; d++)
                output[(r * heads + h) * headDim + d] += scores[t] / sum * v[t * kvDim + kv + d];
        }
        return output;
    }

    /// <summary>Sum over rows of -sum_v p_v log softmax(z)_v.</summary>
    public static double SoftCrossEntropy(double[] logits, double[] targets, int rows, int cols)
    {
        var loss = 0.0;
        for (var r = 0; r < rows; r++)
        {
            var max = double.NegativeInfinity;
            for (var v = 0; v < cols; v++) max = Math.Max(max, logits[r * cols + v]);
            var sum = 0.0;
            for (var v = 0; v < cols; v++) sum += Math.Exp(logits[r * cols + v] - max);
            var logSum = max + Math.Log(sum);
            for (var v = 0; v < cols; v++) loss -= targets[r * cols + v] * (logits[r * cols + v] - logSum);
        }
        return loss;
    }

    /// <summary>The adapter's parameters in <c>AdapterWeights.Parameters</c> order.</summary>
    public sealed record Adapter(double[] InputNorm, double[] Query, double[] Key, double[] Value, double[] Output, double[] OutputNorm)
    {
        public double[][] All => [InputNorm, Query, Key, Value, Output, OutputNorm];
    }

    /// <summary>Mean over positions of the soft cross-entropy between targets p and
    /// softmax(LMHead(RMSNorm_out(s + Attention(RoPE(q, k), v) Wo^T))).</summary>
    public static double AdapterLoss(Adapter a, double[] states, double[] targets, double[] lmHead, int rows, int dim, int heads, int vocab, double eps, double theta)
    {
        var headDim = dim / heads;
        var normed = RmsNorm(states, a.InputNorm, rows, eps);
        var q = Rope(MatMul(normed, a.Query, rows, dim, dim), rows, heads, headDim, 0, theta);
        var k = Rope(MatMul(normed, a.Key, rows, dim, dim), rows, heads, headDim, 0, theta);
        var v = MatMul(normed, a.Value, rows, dim, dim);
        var attention = Attention(q, k, v, rows, 0, heads, heads, headDim);
        var sum = MatMul(attention, a.Output, rows, dim, dim);
        for (var i = 0; i < sum.Length; i++) sum[i] += states[i];
        var adapted = RmsNorm(sum, a.OutputNorm, rows, eps);
        var logits = MatMul(adapted, lmHead, rows, dim, vocab);
        return SoftCrossEntropy(logits, targets, rows, vocab) / rows;
    }

    /// <summary>Central differences of f at x: (f(x + h e_i) - f(x - h e_i)) / 2h for every i, restoring x.</summary>
    public static double[] NumericGradient(Func<double> f, double[] x, double h = 1e-5)
    {
        var gradient = new double[x.Length];
        for (var i = 0; i < x.Length; i++)
        {
            var saved = x[i];
            x[i] = saved + h;
            var plus = f();
            x[i] = saved - h;
            var minus = f();
            x[i] = saved;
            gradient[i] = (plus - minus) / (2 * h);
        }
        return gradient;
    }

    /// <summary>max_i |actual_i - expected_i| / max(max_i |expected_i|, 1e-3): the error relative to
    /// the gradient's scale (an element-wise ratio is meaningless for elements near zero).</summary>
    public static double RelativeError(ReadOnlySpan<float> actual, double[] expected)
    {
        if (actual.Length != expected.Length) throw new ArgumentException($"{actual.Length} values, expected {expected.Length}");
        double worst = 0, scale = 1e-3;
        for (var i = 0; i < expected.Length; i++)
        {
            if (!float.IsFinite(actual[i])) return double.PositiveInfinity;
            worst = Math.Max(worst, Math.Abs(actual[i] - expected[i]));
            scale = Math.Max(scale, Math.Abs(expected[i]));
        }
        return worst / scale;
    }

    public static float[] RandomFloats(Random random, int length, double scale = 1, double offset = 0) =>
        Enumerable.Range(0, length).Select(_ => (float)(offset + (random.NextDouble() * 2 - 1) * scale)).ToArray();

    /// <summary>Random probability distributions [rows, cols], with a few exact zeros.</summary>
    public static float[] RandomDistributions(Random random, int rows, int cols)
    {
        var p = new float[rows * cols];
        for (var r = 0; r < rows; r++)
        {
            var sum = 0.0;
            for (var v = 0; v < cols; v++) sum += p[r * cols + v] = random.Next(5) == 0 ? 0f : (float)Math.Exp(random.NextDouble() * 4);
            for (var v = 0; v < cols; v++) p[r * cols + v] = (float)(p[r * cols + v] / sum);
        }
        return p;
    }

    public static double[] ToDouble(float[] values) => values.Select(v => (double)v).ToArray();
}
