using Kangaroo.Native.Engine;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>Passes of one sequence for tests that drive the layer stack directly.</summary>
internal static class ModelPasses
{
    /// <summary>Positions start..start+rows-1 of the sequence in cache slot 0 (the rows' embeddings are the caller's).</summary>
    public static Batch OneSequence(int start, int rows)
    {
        var batch = new Batch(Math.Max(1, rows));
        batch.Add(0, start, new int[rows]);
        return batch;
    }
}
