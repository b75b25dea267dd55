using System.Text.Json;

namespace Kangaroo.Native.Loader;

/// <summary>A Hugging Face Llama model directory: config.json, model.safetensors or shards listed in
/// model.safetensors.index.json, and tokenizer.model.</summary>
public sealed class HfModelDirectory : ModelCheckpoint
{
    private readonly Dictionary<string, SafeTensorsFile> _fileOfTensor = new();
    private readonly List<SafeTensorsFile> _files = new();

    public override LlamaConfig Config { get; }
    public override string Source { get; }
    public override string? TokenizerPath { get; }

    private HfModelDirectory(string directory)
    {
        Source = directory;
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath)) throw new ModelFormatException($"{configPath}: file not found (a Hugging Face model directory needs config.json)");
        InputFile.Require(configPath, "model configuration");
        Config = LlamaConfig.FromJsonFile(configPath);
        var tokenizer = Path.Combine(directory, "tokenizer.model");
        TokenizerPath = File.Exists(tokenizer) ? tokenizer : null;

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
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public static new HfModelDirectory Open(string directory)
    {
        try
        {
            return new HfModelDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFormatException($"{directory}: cannot read ({e.Message})");
        }
    }

    private void OpenShards(string directory, string index)
    {
        Dictionary<string, string> weightMap;
        try
        {
            InputFile.Require(index, "shard index");
            using var json = JsonDocument.Parse(File.ReadAllBytes(index));
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
            throw new ModelFormatException($"{index}: not valid JSON ({e.Message})");
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

    public override IReadOnlyList<string> Files =>
        [Path.Combine(Source, "config.json"), Path.Combine(Source, "model.safetensors.index.json"), .. _files.Select(f => f.Path), .. TokenizerPath is null ? [] : new[] { TokenizerPath }];

    public override bool Contains(string name) => _fileOfTensor.ContainsKey(name);

    protected override TensorData ReadTensor(string name) =>
        _fileOfTensor.TryGetValue(name, out var file)
            ? file.Read(name)
            : throw new ModelFormatException($"{FileOf(name)}: tensor '{name}' is missing");

    protected override string FileOf(string name) =>
        _fileOfTensor.TryGetValue(name, out var file) ? file.Path
        : _files.Count == 1 ? _files[0].Path
        : Path.Combine(Source, "model.safetensors.index.json");

    public override void Dispose()
    {
        foreach (var file in _files) file.Dispose();
        _files.Clear();
        base.Dispose();
    }
}
