using System.Globalization;
using System.Runtime.InteropServices;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Engine.Kangaroo;

/// <summary>
/// The Kangaroo adapter's parameters on the host, in float32:
/// <c>a = RMSNorm_out(s + Attention(RMSNorm_in(s)))</c> with multi-head attention (q, k, v, o: [dim, dim],
/// no bias, RoPE) over the residual stream s after the exit layer. Stored as safetensors under the
/// reference implementation's key names, with the exit layer and the target model's identity in the
/// metadata so that an adapter is never used with a model it was not made for.
/// </summary>
public sealed class AdapterWeights
{
    /// <summary>The safetensors key of the input RMSNorm gain [dim].</summary>
    public const string InputNormKey = "layers.0.input_layernorm.weight";
    /// <summary>The safetensors key of the query projection [dim, dim].</summary>
    public const string QueryKey = "layers.0.self_attn.q_proj.weight";
    /// <summary>The safetensors key of the key projection [dim, dim].</summary>
    public const string KeyKey = "layers.0.self_attn.k_proj.weight";
    /// <summary>The safetensors key of the value projection [dim, dim].</summary>
    public const string ValueKey = "layers.0.self_attn.v_proj.weight";
    /// <summary>The safetensors key of the attention output projection [dim, dim].</summary>
    public const string OutputKey = "layers.0.self_attn.o_proj.weight";
    /// <summary>The safetensors key of the output RMSNorm gain [dim].</summary>
    public const string OutputNormKey = "norm.weight";

    /// <summary>The metadata key of the exit layer.</summary>
    public const string ExitLayerMeta = "kangaroo.exit_layer";
    /// <summary>The metadata key of the target model's identity (<see cref="LlamaModel.Fingerprint"/>).</summary>
    public const string TargetMeta = "kangaroo.target";
    /// <summary>The metadata key of the draft vocabulary's token ids.</summary>
    public const string DraftVocabularyMeta = "kangaroo.draft_vocab";

    /// <summary>The hidden size: the target model's dim.</summary>
    public int Dim { get; }
    /// <summary>The layer after which the adapter reads the residual stream (1..layers-1).</summary>
    public int ExitLayer { get; }
    /// <summary>The input RMSNorm gain [dim].</summary>
    public float[] InputNorm { get; }
    /// <summary>The query projection [dim, dim], row-major.</summary>
    public float[] Query { get; }
    /// <summary>The key projection [dim, dim], row-major.</summary>
    public float[] Key { get; }
    /// <summary>The value projection [dim, dim], row-major.</summary>
    public float[] Value { get; }
    /// <summary>The attention output projection [dim, dim], row-major.</summary>
    public float[] Output { get; }
    /// <summary>The output RMSNorm gain [dim].</summary>
    public float[] OutputNorm { get; }

    /// <summary>Free-form metadata written with the file (training settings, metrics).</summary>
    public Dictionary<string, string> Metadata { get; } = new();

    /// <summary>The token ids the draft head scores (ascending), or null for the whole vocabulary.</summary>
    public int[]? DraftVocabulary { get; set; }

    /// <summary>How often drafts were accepted on held-out text, if measured.</summary>
    public AcceptanceStatistics? Acceptance { get; set; }

    /// <summary>Adapter parameters over the given arrays (not copied).</summary>
    public AdapterWeights(int dim, int exitLayer, float[] inputNorm, float[] query, float[] key, float[] value, float[] output, float[] outputNorm)
    {
        Dim = dim;
        ExitLayer = exitLayer;
        (InputNorm, Query, Key, Value, Output, OutputNorm) = (inputNorm, query, key, value, output, outputNorm);
    }

    /// <summary>All parameter arrays, in a fixed order (for optimisers and tests).</summary>
    public IReadOnlyList<float[]> Parameters => [InputNorm, Query, Key, Value, Output, OutputNorm];

    /// <summary>A deep copy: parameters, metadata and acceptance statistics.</summary>
    public AdapterWeights Clone()
    {
        var copy = new AdapterWeights(Dim, ExitLayer, (float[])InputNorm.Clone(), (float[])Query.Clone(), (float[])Key.Clone(),
            (float[])Value.Clone(), (float[])Output.Clone(), (float[])OutputNorm.Clone());
        foreach (var (k, v) in Metadata) copy.Metadata[k] = v;
        copy.DraftVocabulary = DraftVocabulary;
        copy.Acceptance = Acceptance?.Clone();
        return copy;
    }

    /// <summary>PyTorch's default Linear initialisation (uniform in ±1/sqrt(fan_in)) from a seed, norms at 1.</summary>
    public static AdapterWeights Random(int dim, int exitLayer, int seed)
    {
        var random = new Random(seed);
        var bound = 1.0 / Math.Sqrt(dim);
        float[] Matrix() => Enumerable.Range(0, dim * dim).Select(_ => (float)((random.NextDouble() * 2 - 1) * bound)).ToArray();
        float[] Ones() => Enumerable.Repeat(1f, dim).ToArray();
        return new AdapterWeights(dim, exitLayer, Ones(), Matrix(), Matrix(), Matrix(), Matrix(), Ones());
    }

    /// <summary>Checks the adapter against a target model and returns it; the message names <paramref name="source"/>.</summary>
    public AdapterWeights CheckFits(LlamaConfig target, string targetIdentity, string source)
    {
        if (Dim != target.Dim)
            throw new ModelFormatException($"{source}: adapter hidden size {Dim} does not match the model's {target.Dim}: it was made for another model");
        if (ExitLayer < 1 || ExitLayer >= target.Layers)
            throw new ModelFormatException($"{source}: exit layer {ExitLayer} is outside 1..{target.Layers - 1} for a {target.Layers}-layer model");
        if (Metadata.TryGetValue(TargetMeta, out var made) && made != targetIdentity)
            throw new ModelFormatException($"{source}: adapter was made for model '{made}', not for this model '{targetIdentity}'");
        if (DraftVocabulary?.FirstOrDefault(id => id >= target.VocabSize) is { } outside && outside >= target.VocabSize)
            throw new ModelFormatException($"{source}: draft vocabulary id {outside} is outside the model's vocabulary of {target.VocabSize}");
        return this;
    }

    /// <summary>Writes the adapter as safetensors to <paramref name="path"/> (replaced atomically), with <see cref="Metadata"/>,
    /// the exit layer, <paramref name="targetIdentity"/>, the draft vocabulary and the acceptance statistics in its metadata.</summary>
    public void Save(string path, string targetIdentity)
    {
        var metadata = new Dictionary<string, string>(Metadata)
        {
            [ExitLayerMeta] = ExitLayer.ToString(CultureInfo.InvariantCulture),
            [TargetMeta] = targetIdentity,
        };
        if (DraftVocabulary is not null) metadata[DraftVocabularyMeta] = string.Join(',', DraftVocabulary);
        if (Acceptance is not null) metadata[AcceptanceStatistics.MetadataKey] = Acceptance.ToJson();
        SafeTensorOutput Tensor(string name, float[] values, params int[] shape) =>
            new(name, ElementType.F32, shape, MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        SafeTensorsWriter.Write(path,
        [
            Tensor(InputNormKey, InputNorm, Dim),
            Tensor(QueryKey, Query, Dim, Dim),
            Tensor(KeyKey, Key, Dim, Dim),
            Tensor(ValueKey, Value, Dim, Dim),
            Tensor(OutputKey, Output, Dim, Dim),
            Tensor(OutputNormKey, OutputNorm, Dim),
        ], metadata);
    }

    /// <summary>Loads an adapter. The exit layer comes from the file's metadata, else from
    /// <paramref name="exitLayer"/> (a converted reference checkpoint carries no metadata).</summary>
    public static AdapterWeights Load(string path, int? exitLayer = null)
    {
        using var file = SafeTensorsFile.Open(path);
        if (!file.Contains(InputNormKey))
            throw new ModelFormatException($"{path}: tensor '{InputNormKey}' is missing (not a Kangaroo adapter?)");
        var dim = file.Info(InputNormKey).Shape is [var d] ? d
            : throw new ModelFormatException($"{path}: tensor '{InputNormKey}' must be a vector");
        float[] Read(string name, params int[] shape)
        {
            var info = file.Info(name);
            if (!info.Shape.SequenceEqual(shape))
                throw new ModelFormatException($"{path}: tensor '{name}' has shape {TensorData.FormatShape(info.Shape)}, expected {TensorData.FormatShape(shape)}");
            var tensor = file.Read(name);
            if (tensor.CountNonFinite() is var nonFinite and > 0)
                throw new ModelFormatException($"{path}: tensor '{name}' has {nonFinite} non-finite values (NaN or infinity)");
            return tensor.ToFloats();
        }
        int layer;
        if (file.Metadata.TryGetValue(ExitLayerMeta, out var stored))
        {
            if (!int.TryParse(stored, CultureInfo.InvariantCulture, out layer))
                throw new ModelFormatException($"{path}: metadata {ExitLayerMeta} '{stored}' is not an integer");
            if (exitLayer is { } requested && requested != layer)
                throw new ArgumentException($"--exit-layer {requested} disagrees with the adapter {path}, which was trained for exit layer {layer}");
        }
        else
        {
            layer = exitLayer ?? throw new ModelFormatException($"{path}: no {ExitLayerMeta} in the metadata; pass --exit-layer");
        }
        var weights = new AdapterWeights(dim, layer, Read(InputNormKey, dim), Read(QueryKey, dim, dim), Read(KeyKey, dim, dim),
            Read(ValueKey, dim, dim), Read(OutputKey, dim, dim), Read(OutputNormKey, dim));
        foreach (var (k, v) in file.Metadata.Where(m => m.Key is not (DraftVocabularyMeta or AcceptanceStatistics.MetadataKey))) weights.Metadata[k] = v;
        if (file.Metadata.TryGetValue(DraftVocabularyMeta, out var vocabulary)) weights.DraftVocabulary = ParseDraftVocabulary(vocabulary, path);
        if (file.Metadata.TryGetValue(AcceptanceStatistics.MetadataKey, out var acceptance)) weights.Acceptance = AcceptanceStatistics.FromJson(acceptance, path);
        return weights;
    }

    /// <summary>Distinct non-negative ids, ascending, as the draft vocabulary metadata holds them.</summary>
    private static int[] ParseDraftVocabulary(string text, string path)
    {
        var parts = text.Split(',');
        var ids = new int[parts.Length];
        for (var i = 0; i < parts.Length; i++)
        {
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out ids[i]))
                throw new ModelFormatException($"{path}: {DraftVocabularyMeta} entry {i} '{parts[i]}' is not a token id");
            if (i > 0 && ids[i] <= ids[i - 1])
                throw new ModelFormatException($"{path}: {DraftVocabularyMeta} must list distinct ids in ascending order (entry {i} is {ids[i]} after {ids[i - 1]})");
        }
        return ids;
    }

    /// <summary>The <paramref name="size"/> most frequent next-token targets of <paramref name="sequences"/>
    /// (ties to the smaller id), ascending: a draft vocabulary for a head trained on them.</summary>
    public static int[] MostFrequentTokens(IEnumerable<int[]> sequences, int vocabSize, int size)
    {
        if (size < 1 || size > vocabSize) throw new ArgumentException($"--draft-vocab {size} must be in 1..{vocabSize}");
        var counts = new long[vocabSize];
        foreach (var sequence in sequences)
            foreach (var id in sequence.Skip(1)) counts[id]++;
        return Enumerable.Range(0, vocabSize).OrderByDescending(id => counts[id]).ThenBy(id => id).Take(size).Order().ToArray();
    }
}
