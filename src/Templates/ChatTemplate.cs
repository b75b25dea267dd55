using System.Text.Json;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Templates;

/// <summary>A model's Jinja chat template, rendered as transformers renders it (<c>trim_blocks</c> and
/// <c>lstrip_blocks</c> on) by our own interpreter of the subset of Jinja that chat templates use.</summary>
public sealed class ChatTemplate
{
    private readonly List<Node> _nodes;

    private ChatTemplate(string source, string bosToken, string eosToken)
    {
        _nodes = TemplateParser.Parse(source);
        Source = source;
        BosToken = bosToken;
        EosToken = eosToken;
    }

    /// <summary>The template text.</summary>
    public string Source { get; }

    /// <summary>The <c>bos_token</c> the template is rendered with unless another is given ("" when unknown).</summary>
    public string BosToken { get; }

    /// <summary>The <c>eos_token</c> the template is rendered with unless another is given ("" when unknown).</summary>
    public string EosToken { get; }

    /// <summary>Parses a template; a construct outside the supported subset throws <see cref="ChatTemplateException"/> naming it and its line.</summary>
    public static ChatTemplate Parse(string source, string bosToken = "", string eosToken = "") => new(source, bosToken, eosToken);

    /// <summary>Loads the template of a <c>tokenizer_config.json</c> (its <c>chat_template</c>, a string or a list of
    /// <c>{name, template}</c> of which the one named "default" is used, and its <c>bos_token</c>/<c>eos_token</c>),
    /// of a GGUF model (its <c>tokenizer.chat_template</c>, and the text of its BOS and EOS tokens), or of a
    /// text file holding the template itself.</summary>
    public static ChatTemplate Load(string path)
    {
        if (GgufFile.HasMagic(path)) return LoadGguf(path);
        var text = File.ReadAllText(path);
        JsonDocument config;
        try
        {
            config = JsonText.Parse(text);
        }
        catch (JsonException e)
        {
            if (Path.GetExtension(path).Equals(".json", StringComparison.OrdinalIgnoreCase)) throw new FormatException($"{path} is not valid JSON: {ErrorText.Json(e)}");
            return Parse(text);
        }
        using (config)
        {
            var root = config.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("chat_template", out var template))
                throw new FormatException($"{path} is JSON without a \"chat_template\": give a tokenizer_config.json or a file holding the template");
            return Parse(SelectTemplate(template, path), TokenText(root, "bos_token"), TokenText(root, "eos_token"));
        }
    }

    private static ChatTemplate LoadGguf(string path)
    {
        using var gguf = GgufFile.Open(path);
        var template = gguf.String("tokenizer.chat_template") ?? throw new FormatException($"{path} is a GGUF model without a chat template (tokenizer.chat_template)");
        var tokens = gguf.Strings("tokenizer.ggml.tokens") ?? [];
        string TokenText(string key) => gguf.Integer(key) is { } id && id >= 0 && id < tokens.Length ? tokens[id] : "";
        return Parse(template, TokenText("tokenizer.ggml.bos_token_id"), TokenText("tokenizer.ggml.eos_token_id"));
    }

    private static string SelectTemplate(JsonElement template, string path)
    {
        if (template.ValueKind == JsonValueKind.String) return template.GetString()!;
        if (template.ValueKind == JsonValueKind.Array)
        {
            var named = template.EnumerateArray()
                .Where(t => t.ValueKind == JsonValueKind.Object && t.TryGetProperty("name", out _) && t.TryGetProperty("template", out _))
                .ToDictionary(t => t.GetProperty("name").GetString() ?? "", t => t.GetProperty("template").GetString() ?? "");
            if (named.TryGetValue("default", out var chosen)) return chosen;
            throw new FormatException($"{path} has chat templates {string.Join(", ", named.Keys)} and none named \"default\"");
        }
        throw new FormatException($"{path}: \"chat_template\" is neither a string nor a list of {{name, template}}");
    }

    /// <summary>A special token of tokenizer_config.json: a string, or an object with its <c>content</c>.</summary>
    private static string TokenText(JsonElement config, string name) =>
        !config.TryGetProperty(name, out var token) ? ""
        : token.ValueKind == JsonValueKind.String ? token.GetString()!
        : token.ValueKind == JsonValueKind.Object && token.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String ? content.GetString()!
        : "";

    /// <summary>Renders the conversation. Messages are mappings (<c>IDictionary&lt;string, object?&gt;</c> or
    /// <see cref="JsonElement"/> objects) with at least <c>role</c> and <c>content</c>; <paramref name="tools"/> is
    /// undefined in the template when null. A template's <c>raise_exception(message)</c> throws
    /// <see cref="ChatTemplateRaisedException"/> carrying exactly that message.</summary>
    public string Render(IEnumerable<object?> messages, bool addGenerationPrompt = false, IEnumerable<object?>? tools = null,
        string? bosToken = null, string? eosToken = null)
    {
        var variables = new Dictionary<string, object?>
        {
            ["messages"] = messages.ToList(),
            ["add_generation_prompt"] = addGenerationPrompt,
            ["bos_token"] = bosToken ?? BosToken,
            ["eos_token"] = eosToken ?? EosToken,
        };
        if (tools is not null) variables["tools"] = tools.ToList();
        return Render(variables);
    }

    /// <summary>Token ids of a conversation of (role, content) messages rendered with the generation prompt,
    /// encoded after one BOS: a <see cref="BosToken"/> the template writes at the start is not encoded twice,
    /// and special tokens in the text are matched as special tokens where the tokenizer has them.</summary>
    public int[] Encode(ModelTokenizer tokenizer, IEnumerable<(string Role, string Content)> messages)
    {
        var conversation = messages.Select(m => (object?)new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        var text = Render(conversation, addGenerationPrompt: true);
        return tokenizer.Encode(BosToken.Length > 0 && text.StartsWith(BosToken, StringComparison.Ordinal) ? text[BosToken.Length..] : text, addSpecialTokens: true);
    }

    /// <summary>Renders with any variables (.NET values as <see cref="TemplateValues.FromClr"/> converts them).</summary>
    internal string Render(IReadOnlyDictionary<string, object?> variables)
    {
        var globals = new Scope(null);
        foreach (var function in TemplateMethods.Globals()) globals.Set(function.Name, function);
        foreach (var (name, value) in variables) globals.Set(name, TemplateValues.FromClr(value));
        return TemplateRenderer.Render(_nodes, globals);
    }
}
