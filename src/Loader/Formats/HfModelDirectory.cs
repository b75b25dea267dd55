using System.Text.Json;

namespace Kangaroo.Native.Loader;

/// <summary>A Hugging Face Llama model directory: config.json, model.safetensors or shards listed in
/// model.safetensors.index.json, and tokenizer.model or tokenizer.json.</summary>
public sealed class HfModelDirectory : ModelCheckpoint
{
    private readonly Dictionary<string, SafeTensorsFile> _fileOfTensor = new();
    private readonly List<SafeTensorsFile> _files = new();

    /// <summary>Names that read another tensor: tied weights stored once.</summary>
    private readonly Dictionary<string, string> _aliases = new();

    /// <inheritdoc/>
    public override LlamaConfig Config { get; }
    /// <inheritdoc/>
    public override string Source { get; }
    /// <inheritdoc/>
    public override string? TokenizerPath { get; }

    private HfModelDirectory(string directory)
    {
        Source = directory;
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath)) throw new ModelFormatException($"{configPath}: file not found (a Hugging Face model directory needs config.json)");
        InputFile.Require(configPath, "model configuration");
        var config = LlamaConfig.FromJsonFile(configPath);
        Config = config with { EosIds = config.EosIds.Union(GenerationEosIds(Path.Combine(directory, "generation_config.json"), config.VocabSize)).ToArray() };
        TokenizerPath = new[] { "tokenizer.model", "tokenizer.json" }.Select(name => Path.Combine(directory, name)).FirstOrDefault(File.Exists);

        var single = Path.Combine(directory, "model.safetensors");
        var index = Path.Combine(directory, "model.safetensors.index.json");
        try
        {
            if (File.Exists(single))
            {
                var file = SafeTensorsFile.Open(single);
                _files.Add(file);
                foreach (var name in file.Tensors.Keys) _fileOfTensor[name] = file;
            }
            else if (File.Exists(index))
            {
                OpenShards(directory, index);
            }
            else
            {
                throw new ModelFormatException($"{directory}: neither model.safetensors nor model.safetensors.index.json found");
            }
            FindTiedWeights();
            RefuseUnusedTensors();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Opens a Hugging Face model directory: config.json and one safetensors file or an index of shards; throws <see cref="ModelFormatException"/> naming the file at fault.</summary>
    public static new HfModelDirectory Open(string directory) =>
        InputFile.Reading(directory, () => new HfModelDirectory(directory));

    private void OpenShards(string directory, string index)
    {
        Dictionary<string, string> weightMap;
        try
        {
            InputFile.Require(index, "shard index");
            using var json = InputFile.ParseJson(index, File.ReadAllBytes(index), allowDuplicates: true);
            if (!json.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException($"{index}: missing weight_map");
            weightMap = new Dictionary<string, string>();
            foreach (var entry in map.EnumerateObject())
            {
                if (entry.Value.ValueKind != JsonValueKind.String || entry.Value.GetString() is not { Length: > 0 } shardName)
                    throw new ModelFormatException($"{index}: weight_map entry '{entry.Name}' is not a file name");
                if (!weightMap.TryAdd(entry.Name, shardName))
                    throw new ModelFormatException($"{index}: weight_map lists tensor '{entry.Name}' more than once");
            }
            if (weightMap.Count == 0) throw new ModelFormatException($"{index}: weight_map is empty");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            throw new ModelFormatException($"{index}: not valid JSON ({ErrorText.Of(e)})");
        }
        var opened = new Dictionary<string, SafeTensorsFile>();
        foreach (var (tensor, shard) in weightMap)
        {
            if (shard.Contains('/') || shard.Contains('\\') || shard is "." or ".." || Path.IsPathRooted(shard))
                throw new ModelFormatException($"{index}: shard name '{shard}' must be a file in the model directory");
            if (!opened.TryGetValue(shard, out var file))
            {
                var shardPath = Path.Combine(directory, shard);
                if (!File.Exists(shardPath))
                    throw new ModelFormatException($"{shardPath}: file not found (listed for tensor '{tensor}' in {Path.GetFileName(index)})");
                file = SafeTensorsFile.Open(shardPath);
                opened[shard] = file;
                _files.Add(file);
            }
            if (!file.Contains(tensor))
                throw new ModelFormatException($"{file.Path}: tensor '{tensor}' is missing (listed in {Path.GetFileName(index)})");
            _fileOfTensor[tensor] = file;
        }
    }

    /// <inheritdoc/>
    public override IReadOnlyList<string> Files =>
        [Path.Combine(Source, "config.json"), Path.Combine(Source, "model.safetensors.index.json"), .. _files.Select(f => f.Path), .. TokenizerPath is null ? [] : new[] { TokenizerPath }];

    /// <summary>Tied weights stored under one name: save_pretrained records the other name in the
    /// safetensors __metadata__ ("model.embed_tokens.weight": "lm_head.weight"); with
    /// tie_word_embeddings, either of the embedding and the LM head stands for both.</summary>
    private void FindTiedWeights()
    {
        foreach (var file in _files)
            foreach (var (name, target) in file.Metadata)
                if (!_fileOfTensor.ContainsKey(name) && _fileOfTensor.ContainsKey(target)) _aliases[name] = target;
        if (!Config.TiedEmbeddings) return;
        if (!Contains(ModelCheckpoint.Names.Embedding) && Contains(ModelCheckpoint.Names.LmHead)) _aliases[ModelCheckpoint.Names.Embedding] = ModelCheckpoint.Names.LmHead;
        if (!Contains(ModelCheckpoint.Names.LmHead) && Contains(ModelCheckpoint.Names.Embedding)) _aliases[ModelCheckpoint.Names.LmHead] = ModelCheckpoint.Names.Embedding;
    }

    /// <summary>A tensor the configuration does not use means the configuration describes another
    /// model (fewer layers, no biases): refused rather than silently ignored. Rotary tables some
    /// checkpoints store (rotary_emb.inv_freq) are recomputed, so they are skipped.</summary>
    private void RefuseUnusedTensors()
    {
        var expected = ModelCheckpoint.Names.Expected(Config).Select(t => t.Name).Append(ModelCheckpoint.Names.LmHead).ToHashSet();
        foreach (var (name, file) in _fileOfTensor)
            if (!expected.Contains(name) && !name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal))
                throw new ModelFormatException($"{file.Path}: tensor '{name}' is not used by the configuration in config.json (num_hidden_layers {Config.Layers}, attention_bias {Config.AttentionBias.ToString().ToLowerInvariant()})");
    }

    /// <summary>eos_token_id of generation_config.json (a number or a list), where there is one.</summary>
    private static IEnumerable<int> GenerationEosIds(string path, int vocabSize)
    {
        if (!File.Exists(path)) return [];
        try
        {
            using var json = InputFile.ParseJson(path, File.ReadAllBytes(path));
            if (json.RootElement.ValueKind != JsonValueKind.Object || !json.RootElement.TryGetProperty("eos_token_id", out var eos) || eos.ValueKind == JsonValueKind.Null)
                return [];
            var ids = (eos.ValueKind == JsonValueKind.Array ? eos.EnumerateArray().ToArray() : [eos])
                .Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out var id) && id >= 0 && id < vocabSize ? id
                    : throw new ModelFormatException($"{path}: eos_token_id {e.GetRawText()} is not a token id of the {vocabSize}-token vocabulary"));
            return ids.ToArray();
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{path}: not valid JSON ({ErrorText.Json(e)})");
        }
    }

    /// <inheritdoc/>
    protected override string ConfigFile => Path.Combine(Source, "config.json");

    /// <inheritdoc/>
    public override bool Contains(string name) => _fileOfTensor.ContainsKey(_aliases.GetValueOrDefault(name, name));

    /// <inheritdoc/>
    protected override TensorData ReadTensor(string name) =>
        _fileOfTensor.TryGetValue(_aliases.GetValueOrDefault(name, name), out var file)
            ? file.Read(_aliases.GetValueOrDefault(name, name))
            : throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' is missing" +
                (name == ModelCheckpoint.Names.LmHead && !Config.TiedEmbeddings ? $" ({ConfigFile} does not set tie_word_embeddings)" : ""));

    /// <inheritdoc/>
    public override IDisposable? Lease(string name) =>
        _fileOfTensor.TryGetValue(_aliases.GetValueOrDefault(name, name), out var file) ? file.Lease() : null;

    /// <inheritdoc/>
    protected override TensorExtent? ExtentOf(string name)
    {
        var stored = _aliases.GetValueOrDefault(name, name);
        if (!_fileOfTensor.TryGetValue(stored, out var file)) return null;
        var info = file.Info(stored);
        return new TensorExtent(file.Path, file.DataOffset + info.Begin, info.Type, info.Shape);
    }

    /// <inheritdoc/>
    protected override string FileOf(string name) =>
        _fileOfTensor.TryGetValue(_aliases.GetValueOrDefault(name, name), out var file) ? file.Path
        : _files.Count == 1 ? _files[0].Path
        : Path.Combine(Source, "model.safetensors.index.json");

    /// <inheritdoc/>
    public override void Dispose()
    {
        foreach (var file in _files) file.Dispose();
        _files.Clear();
        base.Dispose();
    }
}
