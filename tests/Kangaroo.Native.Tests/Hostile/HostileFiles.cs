using System.Diagnostics;

namespace Kangaroo.Native.Tests.Hostile;

/// <summary>Copies of the embedded model and tokenizer with one thing wrong, written into a temporary directory.</summary>
public static class HostileFiles
{
    private static readonly LlamaConfig Config = Llama2cCheckpoint.Open(SharedData.EmbeddedModel).Config;
    public static string EmbeddedTokenizer => Path.Combine(Path.GetDirectoryName(SharedData.EmbeddedModel)!, "tok512.model");

    /// <summary>Byte offset of model.norm.weight in the llama2.c file (after the embedding and the layers).</summary>
    public static long FinalNormOffset
    {
        get
        {
            var c = Config;
            long perLayer = 2L * c.Dim + 2L * c.Dim * c.Dim + 2L * c.KvDim * c.Dim + 3L * c.HiddenDim * c.Dim;
            return 7 * sizeof(int) + 4 * ((long)c.VocabSize * c.Dim + c.Layers * perLayer);
        }
    }

    /// <summary>Byte offset of layer 0's q projection in the llama2.c file (after the embedding and the attention norms).</summary>
    public static long QueryOffset => 7 * sizeof(int) + 4 * ((long)Config.VocabSize * Config.Dim + (long)Config.Layers * Config.Dim);

    public static int Dim => Config.Dim;

    /// <summary>The embedded model with its tokenizer, copied into <paramref name="directory"/>, with
    /// <paramref name="change"/> applied to the model's bytes. Returns the model's path.</summary>
    public static string Model(string directory, Action<byte[]>? change = null)
    {
        var bytes = File.ReadAllBytes(SharedData.EmbeddedModel);
        change?.Invoke(bytes);
        var path = Path.Combine(directory, "model.bin");
        File.WriteAllBytes(path, bytes);
        File.Copy(EmbeddedTokenizer, Path.Combine(directory, "tok512.model"), overwrite: true);
        return path;
    }

    public static void SetFloat(byte[] bytes, long offset, float value) => BitConverter.TryWriteBytes(bytes.AsSpan((int)offset, 4), value);

    /// <summary>The embedded tokenizer with its pieces changed, written to <paramref name="path"/>.</summary>
    public static string Tokenizer(string path, Func<IReadOnlyList<SentencePiece>, IReadOnlyList<SentencePiece>> change)
    {
        var m = TextTokenizer.Load(EmbeddedTokenizer).Model;
        var changed = new SentencePieceModel
        {
            Pieces = change(m.Pieces), ModelType = m.ModelType, ByteFallback = m.ByteFallback, UnknownId = m.UnknownId, BosId = m.BosId, EosId = m.EosId,
            PadId = m.PadId, AddDummyPrefix = m.AddDummyPrefix, RemoveExtraWhitespaces = m.RemoveExtraWhitespaces, EscapeWhitespaces = m.EscapeWhitespaces,
        };
        File.WriteAllBytes(path, changed.ToBytes());
        return path;
    }

    /// <summary>A FIFO at <paramref name="path"/> (Unix only).</summary>
    public static string Fifo(string path)
    {
        using var mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }
}
