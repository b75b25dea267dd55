namespace Kangaroo.Native.Templates;

/// <summary>A chat template that cannot be parsed or rendered: a construct outside the supported Jinja subset,
/// a syntax error, or an operation on the wrong kind of value. The message names the construct and its line.</summary>
public class ChatTemplateException : FormatException
{
    /// <summary>A template error: <paramref name="message"/> says what, <paramref name="line"/> where, when known.</summary>
    public ChatTemplateException(string message, int? line = null)
        : base(line is null ? $"chat template: {message}" : $"chat template line {line}: {message}")
    {
        Line = line;
        Detail = message;
    }

    /// <summary>The template line, when known.</summary>
    public int? Line { get; }

    /// <summary>The message without the location prefix.</summary>
    public string Detail { get; }

    internal ChatTemplateException AtLine(int line) => new(Detail, line);
}

/// <summary>The template's own <c>raise_exception(message)</c>: the message is exactly the template's.</summary>
public sealed class ChatTemplateRaisedException : ChatTemplateException
{
    /// <summary>The template raised <paramref name="message"/>.</summary>
    public ChatTemplateRaisedException(string message) : base(message) => RaisedMessage = message;

    /// <summary>The message the template passed to <c>raise_exception</c>.</summary>
    public string RaisedMessage { get; }

    /// <summary>The template's message, without the location prefix.</summary>
    public override string Message => RaisedMessage;
}
