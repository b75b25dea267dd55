using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Engine;

/// <summary>
/// Matrices [rows_i, cols] stacked into one [sum rows_i, cols] product (q|k|v, gate|up): one weight where
/// the parts share an element type, else one weight per run of consecutive parts of one type, each filling
/// its columns of the shared output (<see cref="ComputeDevice.MatMul"/>'s output stride). Each matrix keeps
/// the type its file gave it: llama.cpp's Q4_K_M gives some layers' q and k Q4_K and their v Q6_K. Every
/// output element is the dot product one stacked weight would form.
/// </summary>
public sealed class StackedWeight(IReadOnlyList<DeviceWeight> parts)
{
    /// <summary>The views of one output buffer from each part's first column, made once per buffer.</summary>
    private sealed record Columns(DeviceTensor Output, DeviceTensor[] Views);

    private Columns? _columns;

    /// <summary>The runs of one element type, in row order.</summary>
    public IReadOnlyList<DeviceWeight> Parts => parts;

    /// <summary>Outputs per input row: the parts' rows together.</summary>
    public int Rows { get; } = parts.Sum(p => p.Rows);

    /// <summary>Bytes a pass reads: the parts' bytes.</summary>
    public long Bytes => parts.Sum(p => p.Bytes);

    /// <summary>output[r, :] = the parts' outputs side by side, for r in [0, rows).</summary>
    public void MatMul(ComputeDevice device, DeviceTensor input, DeviceTensor output, int rows)
    {
        if (parts is [var only])
        {
            device.MatMul(input, only, output, rows);
            return;
        }
        var columns = _columns;
        if (columns?.Output != output) _columns = columns = new Columns(output, Views(output));
        for (var k = 0; k < parts.Count; k++) device.MatMul(input, parts[k], columns.Views[k], rows, outputStride: Rows);
    }

    private DeviceTensor[] Views(DeviceTensor output)
    {
        var views = new DeviceTensor[parts.Count];
        for (int k = 0, offset = 0; k < parts.Count; offset += parts[k++].Rows) views[k] = output.Slice(offset, output.Length - offset);
        return views;
    }
}
