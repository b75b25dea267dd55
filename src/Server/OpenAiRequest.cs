using System.Text.Json;

namespace Kangaroo.Native.Server;

/// <summary>
/// A request to <c>/v1/chat/completions</c> (<see cref="Messages"/>) or <c>/v1/completions</c>
/// (<see cref="PromptText"/> or <see cref="PromptIds"/>), checked field by field: a field of the wrong type,
/// a value out of range or an option this server cannot honour is refused with the field named as
/// <c>param</c>. Fields that change nothing here (<c>user</c>, <c>metadata</c>, ...) are ignored.
/// A token limit above the context is refused; unset, <see cref="MaxTokens"/> leaves the limit to the
/// context and <see cref="Seed"/> asks for a random seed. Temperature and top_p default to 1, as OpenAI's do.
/// </summary>
internal sealed record OpenAiRequest(
    string? Model,
    IReadOnlyList<(string Role, string Content)>? Messages,
    string? PromptText,
    IReadOnlyList<int>? PromptIds,
    int? MaxTokens,
    float Temperature,
    float TopP,
    ulong? Seed,
    IReadOnlyList<string> Stop,
    bool Stream,
    bool IncludeUsage)
{
    /// <summary>The longest stop list OpenAI accepts.</summary>
    public const int MaxStopSequences = 4;

    /// <summary>Reads a chat completion request; <c>developer</c> messages are system messages.</summary>
    public static OpenAiRequest Chat(JsonElement root, int context)
    {
        RequireObject(root);
        Refuse(root, "tool_choice", v => v.ValueKind == JsonValueKind.String && v.GetString() == "none", "tools are not supported");
        Refuse(root, "function_call", v => v.ValueKind == JsonValueKind.String && v.GetString() == "none", "function calls are not supported");
        Refuse(root, "response_format", v => v.ValueKind == JsonValueKind.Object && v.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String && t.GetString() == "text",
            "response_format is not supported: replies are plain text");
        Refuse(root, "top_logprobs", _ => false, "logprobs are not supported");
        return Common(root, context, ReadMessages(root), promptText: null, promptIds: null);
    }

    /// <summary>Reads a (legacy) completion request: <c>prompt</c> is a string or a list of token ids.</summary>
    public static OpenAiRequest Completion(JsonElement root, int context)
    {
        RequireObject(root);
        Refuse(root, "echo", _ => false, "echo is not supported");
        Refuse(root, "best_of", v => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n == 1, "best_of must be 1: one completion is generated per request");
        Refuse(root, "suffix", _ => false, "suffix is not supported");
        if (!root.TryGetProperty("prompt", out var prompt) || prompt.ValueKind == JsonValueKind.Null)
            throw ApiException.InvalidValue("prompt", "'prompt' is required");
        if (prompt.ValueKind == JsonValueKind.String) return Common(root, context, null, prompt.GetString()!, null);
        if (prompt.ValueKind == JsonValueKind.Array && prompt.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number))
        {
            var ids = prompt.EnumerateArray().Select(e => e.TryGetInt32(out var id) ? id : throw ApiException.InvalidValue("prompt", $"prompt token id {e.GetRawText()} is not an integer")).ToList();
            return Common(root, context, null, null, ids);
        }
        throw ApiException.InvalidType("prompt", "a string or a list of token ids", prompt);
    }

    private static OpenAiRequest Common(JsonElement root, int context, List<(string, string)>? messages, string? promptText, List<int>? promptIds)
    {
        Refuse(root, "n", v => v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n == 1, "n must be 1: one choice is generated per request");
        Refuse(root, "tools", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0, "tools are not supported");
        Refuse(root, "functions", v => v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0, "function calls are not supported");
        Refuse(root, "logprobs", v => v.ValueKind == JsonValueKind.False || v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out var n) && n == 0, "logprobs are not supported");
        foreach (var penalty in new[] { "presence_penalty", "frequency_penalty" })
            Refuse(root, penalty, v => v.ValueKind == JsonValueKind.Number && v.GetDouble() == 0, $"{penalty} is not supported (only 0)");
        Refuse(root, "logit_bias", v => v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any(), "logit_bias is not supported");

        var maxTokens = ReadMaxTokens(root, "max_completion_tokens", context) ?? ReadMaxTokens(root, "max_tokens", context);
        var temperature = Number(root, "temperature") ?? 1;
        if (temperature is < 0 or > 2) throw ApiException.InvalidValue("temperature", $"temperature {temperature} must be from 0 to 2");
        var topP = Number(root, "top_p") ?? 1;
        if (topP is <= 0 or > 1) throw ApiException.InvalidValue("top_p", $"top_p {topP} must be greater than 0 and at most 1");
        var seed = Field(root, "seed") is { } s ? s.ValueKind == JsonValueKind.Number && s.TryGetInt64(out var value)
            ? unchecked((ulong)value) : throw ApiException.InvalidType("seed", "an integer", s) : (ulong?)null;
        var stream = Boolean(root, "stream") ?? false;
        var includeUsage = false;
        if (Field(root, "stream_options") is { } options)
        {
            if (options.ValueKind != JsonValueKind.Object) throw ApiException.InvalidType("stream_options", "an object", options);
            includeUsage = Boolean(options, "include_usage", "stream_options.include_usage") ?? false;
        }
        return new OpenAiRequest(String(root, "model"), messages, promptText, promptIds, maxTokens, (float)temperature, (float)topP, seed, ReadStop(root), stream, includeUsage);
    }

    private static List<(string, string)> ReadMessages(JsonElement root)
    {
        if (Field(root, "messages") is not { } messages) throw ApiException.InvalidValue("messages", "'messages' is required");
        if (messages.ValueKind != JsonValueKind.Array) throw ApiException.InvalidType("messages", "a list of messages", messages);
        if (messages.GetArrayLength() == 0) throw ApiException.InvalidValue("messages", "'messages' is empty");
        var list = new List<(string, string)>();
        var i = 0;
        foreach (var message in messages.EnumerateArray())
        {
            var at = $"messages[{i++}]";
            if (message.ValueKind != JsonValueKind.Object) throw ApiException.InvalidType(at, "a message object", message);
            var role = String(message, "role", $"{at}.role") ?? throw ApiException.InvalidValue($"{at}.role", $"'{at}.role' is required");
            role = role switch
            {
                "system" or "user" or "assistant" => role,
                "developer" => "system",
                "tool" or "function" => throw ApiException.Unsupported($"{at}.role", "tool messages are not supported"),
                _ => throw ApiException.InvalidValue($"{at}.role", $"'{role}' is not a role (expected system, developer, user or assistant)"),
            };
            if (Field(message, "tool_calls") is { ValueKind: JsonValueKind.Array } calls && calls.GetArrayLength() > 0)
                throw ApiException.Unsupported($"{at}.tool_calls", "tool calls are not supported");
            list.Add((role, Content(message, $"{at}.content")));
        }
        return list;
    }

    /// <summary>A message's text: a string, or a list of text parts (joined by newlines).</summary>
    private static string Content(JsonElement message, string at)
    {
        var content = Field(message, "content") ?? throw ApiException.InvalidValue(at, $"'{at}' is required");
        if (content.ValueKind == JsonValueKind.String) return content.GetString()!;
        if (content.ValueKind != JsonValueKind.Array) throw ApiException.InvalidType(at, "a string or a list of text parts", content);
        var parts = new List<string>();
        var i = 0;
        foreach (var part in content.EnumerateArray())
        {
            var partAt = $"{at}[{i++}]";
            if (part.ValueKind != JsonValueKind.Object) throw ApiException.InvalidType(partAt, "a content part object", part);
            var type = String(part, "type", $"{partAt}.type");
            if (type != "text") throw ApiException.Unsupported($"{partAt}.type", $"content parts of type '{type}' are not supported (only text)");
            parts.Add(String(part, "text", $"{partAt}.text") ?? throw ApiException.InvalidValue($"{partAt}.text", $"'{partAt}.text' is required"));
        }
        return string.Join('\n', parts);
    }

    private static List<string> ReadStop(JsonElement root)
    {
        if (Field(root, "stop") is not { } stop) return [];
        if (stop.ValueKind == JsonValueKind.String) return [stop.GetString()!];
        if (stop.ValueKind != JsonValueKind.Array || stop.EnumerateArray().Any(s => s.ValueKind != JsonValueKind.String))
            throw ApiException.InvalidType("stop", "a string or a list of strings", stop);
        if (stop.GetArrayLength() > MaxStopSequences) throw ApiException.InvalidValue("stop", $"'stop' has {stop.GetArrayLength()} sequences; at most {MaxStopSequences} are allowed");
        return stop.EnumerateArray().Select(s => s.GetString()!).ToList();
    }

    private static void RequireObject(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw new ApiException(400, "the request body must be a JSON object", code: "invalid_type");
    }

    /// <summary>A field that is present and not null.</summary>
    private static JsonElement? Field(JsonElement parent, string name) =>
        parent.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    /// <summary>Refuses a field that is set to anything but its neutral value (null always is).</summary>
    private static void Refuse(JsonElement root, string name, Func<JsonElement, bool> neutral, string message)
    {
        if (Field(root, name) is { } value && !neutral(value)) throw ApiException.Unsupported(name, message);
    }

    private static string? String(JsonElement parent, string name, string? param = null) => Field(parent, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } value => value.GetString(),
        { } value => throw ApiException.InvalidType(param ?? name, "a string", value),
    };

    private static bool? Boolean(JsonElement parent, string name, string? param = null) => Field(parent, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { } value => throw ApiException.InvalidType(param ?? name, "a boolean", value),
    };

    private static double? Number(JsonElement parent, string name) => Field(parent, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } value => value.GetDouble(),
        { } value => throw ApiException.InvalidType(name, "a number", value),
    };

    /// <summary>A token limit: an integer from 0 to the context (more could never be generated).</summary>
    private static int? ReadMaxTokens(JsonElement parent, string name, int context)
    {
        if (Field(parent, name) is not { } value) return null;
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetDecimal(out var number) || number != decimal.Truncate(number))
            throw ApiException.InvalidType(name, "an integer", value);
        if (number < 0) throw ApiException.InvalidValue(name, $"{name} {number} must be >= 0");
        if (number > context) throw ApiException.InvalidValue(name, $"{name} {number} is more than the context of {context} positions");
        return (int)number;
    }
}
