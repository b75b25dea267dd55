using Kangaroo.Native.Engine;
using Kangaroo.Native.Templates;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Server;

/// <summary>The model a server serves: its session, its chat template (without one, chat completions are
/// refused) and its id, the model's name.</summary>
public sealed class ServedModel
{
    private readonly ModelTokenizer _tokenizer;
    private readonly Lock _encoding = new();

    /// <summary>Serves <paramref name="session"/>'s model (the session stays the caller's to dispose), its chat
    /// requests rendered through <paramref name="template"/>.</summary>
    /// <exception cref="ArgumentException">The session has no tokenizer.</exception>
    public ServedModel(InferenceSession session, ChatTemplate? template)
    {
        ArgumentNullException.ThrowIfNull(session);
        _tokenizer = session.Tokenizer ?? throw new ArgumentException($"{session.ModelPath}: the server needs the model's tokenizer; pass --tokenizer");
        Session = session;
        Template = template;
        Id = NameOf(session.ModelPath);
    }

    /// <summary>The session whose model is served.</summary>
    public InferenceSession Session { get; }

    /// <summary>The chat template of <c>/v1/chat/completions</c>; null: chat completions are refused.</summary>
    public ChatTemplate? Template { get; }

    /// <summary>The model's id in requests and responses: <see cref="NameOf"/> of the model's path.</summary>
    public string Id { get; }

    /// <summary>The model's context in positions: the longest prompt plus reply a request may take.</summary>
    public int Context => Session.Model.Context;

    /// <summary>A model's name: its directory's name, or its file's name without the extension.</summary>
    public static string NameOf(string modelPath)
    {
        var path = Path.TrimEndingDirectorySeparator(modelPath);
        return Directory.Exists(path) ? Path.GetFileName(path) : Path.GetFileNameWithoutExtension(path);
    }

    /// <summary>The prompt's token ids, as <c>generate</c> makes them: the messages rendered through the chat
    /// template with the generation prompt and encoded after one BOS (<c>generate --chat</c>), the text
    /// encoded with the model's BOS (<c>generate --prompt</c>), or the ids given (<c>--prompt-ids</c>). A
    /// prompt longer than the context, or a template's refusal, is a 400 naming the reason.</summary>
    internal int[] Encode(OpenAiRequest request)
    {
        var param = request.Messages is null ? "prompt" : "messages";
        int[] prompt;
        lock (_encoding) // tokenizers and templates are not promised to be thread-safe
        {
            if (request.Messages is { } messages)
            {
                if (Template is null) throw new ApiException(400, $"{Id} has no chat template: start the server with --chat-template FILE, or use /v1/completions", "messages", "no_chat_template");
                try
                {
                    prompt = Template.Encode(_tokenizer, messages);
                }
                catch (ChatTemplateException e)
                {
                    throw new ApiException(400, $"the chat template refused the messages: {e.Message}", "messages", "invalid_value");
                }
            }
            else if (request.PromptIds is { } ids)
            {
                foreach (var id in ids)
                    if ((uint)id >= (uint)Session.Model.Config.VocabSize)
                        throw ApiException.InvalidValue("prompt", $"prompt token id {id} is outside the model's vocabulary of {Session.Model.Config.VocabSize}");
                prompt = [.. ids];
            }
            else prompt = _tokenizer.EncodePrompt(request.PromptText!);
        }
        if (prompt.Length == 0) throw ApiException.InvalidValue(param, "the prompt is empty (it needs at least the BOS token)");
        if (prompt.Length > Context)
            throw new ApiException(400, $"the prompt is {prompt.Length} tokens but the context is {Context} positions", param, "context_length_exceeded");
        return prompt;
    }
}
