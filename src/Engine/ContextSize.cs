using Kangaroo.Native.Kernels;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Engine;

/// <summary>How many positions a model's KV cache holds per sequence: what the caller asks for, refused
/// in one line when the model or the device cannot hold it, or a default that fits.</summary>
public static class ContextSize
{
    /// <summary>KV cache and rotary bytes per position of one sequence.</summary>
    private static long BytesPerPosition(LlamaConfig c) => 4L * (2L * c.Layers * c.KvDim + c.HeadDim);

    /// <summary>The context when the caller does not choose one: max_position_embeddings (at most
    /// sliding_window), shortened until the KV caches of <paramref name="sequences"/> sequences fit in
    /// half of the device memory the weights leave.</summary>
    public static int Default(LlamaConfig c, ComputeDevice device, long weightBytes, int sequences = 1)
    {
        var budget = Math.Max(0, (device.MemoryBytes - weightBytes) / 2);
        var fits = budget / (sequences * BytesPerPosition(c));
        return (int)Math.Max(1, Math.Min(Math.Min(c.MaxSeqLen, c.SlidingWindow ?? int.MaxValue), Math.Min(fits, int.MaxValue / ((long)sequences * c.KvDim))));
    }

    /// <summary>The requested context (or the default), checked against the model and the device.</summary>
    public static int Choose(LlamaConfig c, ComputeDevice device, long weightBytes, int? requested, int sequences = 1)
    {
        if (requested is not { } context) return Default(c, device, weightBytes, sequences);
        if (context < 1) throw new ArgumentException($"context {context} must be at least 1");
        if (context > c.MaxSeqLen)
            throw new ArgumentException($"context {context} exceeds the model's max_position_embeddings {c.MaxSeqLen}");
        if (context > c.SlidingWindow)
            throw new ArgumentException($"context {context} exceeds the model's sliding_window {c.SlidingWindow}: attention over a sliding window is not supported, choose a context up to {c.SlidingWindow}");
        var needed = sequences * context * BytesPerPosition(c);
        if ((long)sequences * context * c.KvDim > int.MaxValue || needed > device.MemoryBytes - weightBytes)
            throw new ArgumentException($"context {context}{(sequences > 1 ? $" for {sequences} sequences" : "")} needs {needed >> 20} MiB of KV cache; {device.Kind} has {Math.Max(0, device.MemoryBytes - weightBytes) >> 20} MiB left after the weights");
        return context;
    }
}
