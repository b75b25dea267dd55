namespace Kangaroo.Native.Kernels;

/// <summary>cos and sin of pos * theta^(-2i/headDim) for every position and i in [0, headDim/2),
/// computed once on the host in double precision, so every device rotates by identical angles.</summary>
public sealed class RotaryTable : IDisposable
{
    public int HeadDim { get; }
    public int Positions { get; }
    public DeviceTensor Cos { get; }
    public DeviceTensor Sin { get; }

    public RotaryTable(ComputeDevice device, int headDim, int positions, float theta)
    {
        HeadDim = headDim;
        Positions = positions;
        var half = headDim / 2;
        var cos = new float[positions * half];
        var sin = new float[positions * half];
        for (var pos = 0; pos < positions; pos++)
        for (var i = 0; i < half; i++)
        {
            var angle = pos * Math.Pow(theta, -2.0 * i / headDim);
            cos[pos * half + i] = (float)Math.Cos(angle);
            sin[pos * half + i] = (float)Math.Sin(angle);
        }
        Cos = device.Allocate(cos.Length);
        Sin = device.Allocate(sin.Length);
        device.Upload(cos, Cos);
        device.Upload(sin, Sin);
    }

    public void Dispose()
    {
        Cos.Dispose();
        Sin.Dispose();
    }
}
