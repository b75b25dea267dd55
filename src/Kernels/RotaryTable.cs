namespace Kangaroo.Native.Kernels;

/// <summary>cos and sin of pos * frequency_i for every position and i in [0, headDim/2), computed once
/// on the host in double precision, so every device rotates by identical angles. The frequencies are
/// theta^(-2i/headDim), or those scaled as config.json's rope_scaling says (LlamaConfig.RopeFrequencies).</summary>
public sealed class RotaryTable : IDisposable
{
    /// <summary>Dimensions of an attention head: twice the number of frequencies.</summary>
    public int HeadDim { get; }
    /// <summary>Positions the table covers: the context.</summary>
    public int Positions { get; }
    /// <summary>cos(pos * frequency_i) as [positions, headDim / 2].</summary>
    public DeviceTensor Cos { get; }
    /// <summary>sin(pos * frequency_i) as [positions, headDim / 2].</summary>
    public DeviceTensor Sin { get; }

    /// <summary>The unscaled table: frequency_i = theta^(-2i/headDim).</summary>
    public RotaryTable(ComputeDevice device, int headDim, int positions, float theta)
        : this(device, positions, Enumerable.Range(0, headDim / 2).Select(i => Math.Pow(theta, -2.0 * i / headDim)).ToArray())
    {
    }

    /// <summary>A table for heads of 2 * frequencies.Count dimensions.</summary>
    public RotaryTable(ComputeDevice device, int positions, IReadOnlyList<double> frequencies)
    {
        var half = frequencies.Count;
        HeadDim = 2 * half;
        Positions = positions;
        var cos = new float[positions * half];
        var sin = new float[positions * half];
        for (var pos = 0; pos < positions; pos++)
        for (var i = 0; i < half; i++)
        {
            var angle = pos * frequencies[i];
            cos[pos * half + i] = (float)Math.Cos(angle);
            sin[pos * half + i] = (float)Math.Sin(angle);
        }
        Cos = device.Allocate(cos.Length);
        Sin = device.Allocate(sin.Length);
        device.Upload(cos, Cos);
        device.Upload(sin, Sin);
    }

    /// <summary>Frees the device buffers.</summary>
    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
