using System.Text;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Templates;
using Decoder = Kangaroo.Native.Engine.Decoding.Decoder;

namespace Kangaroo.Native.Engine.Chat;

/// <summary>
/// A conversation with a model through its chat template, turn by turn. Each reply is generated from the
/// whole conversation rendered again (system message, turns, generation prompt); the positions it shares
/// with the previous turn's sequence stay in the KV cache, so only the new suffix is prefilled
/// (<see cref="Decoder.Generate"/> with <c>reuseCache</c> checks that the tokens agree). A conversation
/// longer than the context keeps its first token (BOS) and its latest tokens.
/// </summary>
public sealed class ChatConversation
{
    private readonly List<(string Role, string Content)> _turns = [];
    private readonly ChatTemplate _template;
    private readonly ModelTokenizer _tokenizer;

    /// <summary>A conversation with no turns yet.</summary>
    /// <param name="template">renders the system message and turns into the prompt.</param>
    /// <param name="tokenizer">the model's tokenizer.</param>
    /// <param name="decoder">a decoder of the model the tokenizer belongs to; the conversation is its only user
    /// while it lasts, else every turn prefills the whole conversation again.</param>
    /// <param name="system">the system message, or null for none.</param>
    public ChatConversation(ChatTemplate template, ModelTokenizer tokenizer, Decoder decoder, string? system = null)
    {
        _template = template;
        _tokenizer = tokenizer;
        Decoder = decoder;
        System = system;
    }

    /// <summary>The decoder that generates the replies.</summary>
    public Decoder Decoder { get; }

    /// <summary>The system message the conversation is rendered with (none when null); changing it keeps the turns.</summary>
    public string? System { get; set; }

    /// <summary>The user and assistant messages so far.</summary>
    public IReadOnlyList<(string Role, string Content)> Turns => _turns;

    /// <summary>Tokens dropped from the start of the last prompt built (after BOS) to fit the context.</summary>
    public int DroppedTokens { get; private set; }

    /// <summary>Forgets the turns (the system message stays).</summary>
    public void Reset() => _turns.Clear();

    /// <summary>The prompt of a reply to <paramref name="user"/>: the conversation rendered with the generation
    /// prompt and encoded, cut to leave room for <paramref name="maxNewTokens"/> (at most half the context).</summary>
    public int[] Prompt(string user, int maxNewTokens)
    {
        var messages = (System is null ? [] : new[] { ("system", System) }).Concat(_turns).Append(("user", user));
        var prompt = _template.Encode(_tokenizer, messages);
        var context = Decoder.Model.Context;
        var limit = context - Math.Min(maxNewTokens, context / 2);
        DroppedTokens = Math.Max(0, prompt.Length - limit);
        return DroppedTokens == 0 ? prompt : [prompt[0], .. prompt[(1 + DroppedTokens)..]];
    }

    /// <summary>Streams the reply to <paramref name="user"/> as text pieces while tokens are committed (the stop
    /// token ends it and is not part of the text). The user message and the reply, also a reply cut short by
    /// cancellation or by disposing the enumeration, become part of the conversation.
    /// <see cref="Decoder"/>'s <see cref="Decoder.Stats"/> then describe the reply.</summary>
    public IEnumerable<string> Reply(string user, int maxNewTokens, SamplingOptions sampling, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(user);
        var tokens = Decoder.Generate(Prompt(user, maxNewTokens), maxNewTokens, sampling, cancellationToken, reuseCache: true);
        return Stream(user, tokens);
    }

    private IEnumerable<string> Stream(string user, IEnumerable<int> tokens)
    {
        var stream = _tokenizer.NewStream();
        var reply = new StringBuilder();
        try
        {
            foreach (var token in tokens)
            {
                var piece = Decoder.Model.Config.EosIds.Contains(token) ? stream.Flush() : stream.Append(token);
                reply.Append(piece);
                if (piece.Length > 0) yield return piece;
            }
            var rest = stream.Flush();
            reply.Append(rest);
            if (rest.Length > 0) yield return rest;
        }
        finally
        {
            _turns.Add(("user", user));
            _turns.Add(("assistant", reply.ToString()));
        }
    }
}
