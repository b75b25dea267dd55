// README "Use it from .NET", run from the packages: generate with the `auto` decoder and say what it chose,
// then the same model as an IChatClient. Usage: Kangaroo.Native.Sample [MODEL] (default: stories260K, copied
// beside the program). Exits 1 if either generated no text.
using Kangaroo.Native.Chat;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Kangaroo;
using Kangaroo.Native.Templates;
using Microsoft.Extensions.AI;

var model = args.Length > 0 ? args[0] : Path.Combine(AppContext.BaseDirectory, "models", "stories260K", "stories260K.bin");

using var session = InferenceSession.Open(model, "auto");
using var decoder = session.CreateDecoder("auto");  // Kangaroo where it pays on this device (the adapter lies beside the model)
var prompt = session.EncodePrompt("Once upon a time");
var ids = decoder.Generate(prompt, maxNewTokens: 64, new SamplingOptions()).ToList();
var text = session.Tokenizer!.Decode(ids);
var why = decoder is SelfSpeculativeDecoder { Controller: { } auto } ? auto.Plan.Describe() : decoder.Name;
Console.WriteLine($"{text}\n({decoder.Stats.DecodeTokensPerSecond:F0} tok/s; {why})");

// A chat client over the same session. stories260K has no chat template: this ChatML one stands in, and the
// story model just continues a story after it.
const string chatMl = """
    {% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}{% endfor %}
    {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
    """;
using IChatClient client = new KangarooChatClient(session, ChatTemplate.Parse(chatMl));
var reply = await client.GetResponseAsync([new(ChatRole.User, "Tell me a story about a cat.")], new ChatOptions { MaxOutputTokens = 32 });
Console.WriteLine($"chat: {reply.Text}\n({reply.Usage?.InputTokenCount} prompt tokens, {reply.Usage?.OutputTokenCount} generated; {reply.FinishReason})");

return string.IsNullOrWhiteSpace(text) || string.IsNullOrWhiteSpace(reply.Text) ? 1 : 0;
