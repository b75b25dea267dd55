using System.CommandLine;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Templates;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Cli;

/// <summary>The options of chat: the template, and the system message where a command starts a conversation.</summary>
internal sealed class ChatArguments(bool withSystem)
{
    public Option<string> Template { get; } = new("--chat-template")
    {
        Description = "chat template: a tokenizer_config.json (its chat_template) or a text file holding the template (default: the model's tokenizer_config.json)",
    };

    public Option<string> System { get; } = new("--system") { Description = "system message of the conversation" };

    public void AddTo(Command command)
    {
        command.Options.Add(Template);
        if (withSystem) command.Options.Add(System);
    }

    /// <summary>The template given with <c>--chat-template</c>, else the <c>chat_template</c> of the model's tokenizer_config.json.</summary>
    public ChatTemplate Load(ParseResult result, InferenceSession session)
    {
        if (session.Tokenizer is null) throw new ArgumentException($"{session.ModelPath}: chat needs the model's tokenizer; pass --tokenizer");
        if (result.GetValue(Template) is { } path)
        {
            InputFile.Require(path, "--chat-template file");
            return ChatTemplate.Load(path);
        }
        var config = ModelConfig(session);
        if (!File.Exists(config) || !HasChatTemplate(config))
            throw new ArgumentException($"{session.ModelPath} has no chat template (no chat_template in a tokenizer_config.json beside it): pass --chat-template FILE");
        return ChatTemplate.Load(config);
    }

    /// <summary>As <see cref="Load"/>, but null when no <c>--chat-template</c> is given and the model has no template.</summary>
    public ChatTemplate? LoadIfAny(ParseResult result, InferenceSession session)
    {
        var config = ModelConfig(session);
        return result.GetValue(Template) is null && !(File.Exists(config) && HasChatTemplate(config)) ? null : Load(result, session);
    }

    private static string ModelConfig(InferenceSession session) =>
        Path.Combine(Directory.Exists(session.ModelPath) ? session.ModelPath : Path.GetDirectoryName(Path.GetFullPath(session.ModelPath))!, "tokenizer_config.json");

    private static bool HasChatTemplate(string config)
    {
        try
        {
            using var document = JsonText.Parse(File.ReadAllText(config));
            return document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("chat_template", out _);
        }
        catch (JsonException e)
        {
            throw new FormatException($"{config} is not valid JSON: {ErrorText.Json(e)}");
        }
    }
}
