using System.CommandLine;
using System.Globalization;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Chat;
using Kangaroo.Native.Templates;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo chat</c>: a conversation in the terminal. Each line on stdin is a user message whose
/// reply streams to stdout; the conversation stays in the KV cache between turns (only each new turn is
/// prefilled). Lines starting with '/' are commands; Ctrl-C stops a reply, not the session.</summary>
internal static class ChatCommand
{
    private const string Help = "/reset forgets the conversation, /system TEXT sets the system message, /stats shows speed, /exit (or end of input) ends";

    public static Command Create()
    {
        var modelArguments = new ModelArguments(withTokenizer: true);
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens per reply at most", DefaultValueFactory = _ => 256 };
        var sampling = new SamplingArguments();
        var speculation = new SpeculationArguments(withDecoder: true);
        var chatArguments = new ChatArguments(withSystem: true);
        var command = new Command("chat", "Chat with the model in the terminal through its chat template") { maxNew };
        modelArguments.AddTo(command);
        sampling.AddTo(command);
        speculation.AddTo(command);
        chatArguments.AddTo(command);
        command.SetAction(result => CliRunner.Guard(() =>
        {
            var maxNewTokens = result.GetValue(maxNew);
            if (maxNewTokens < 1) throw new ArgumentException($"--max-new-tokens {maxNewTokens} must be >= 1");
            var options = sampling.Create(result);
            using var session = modelArguments.Open(result);
            var template = chatArguments.Load(result, session);
            var conversation = new ChatConversation(template, session.Tokenizer!, speculation.CreateDecoder(session, result), result.GetValue(chatArguments.System));
            var interactive = !Console.IsInputRedirected;
            if (interactive)
                Console.Error.WriteLine($"kangaroo: chatting with {session.ModelPath} on {session.Device.Kind}, decoder {conversation.Decoder.Name}. {Help}.");
            Run(conversation, maxNewTokens, options, interactive);
            return 0;
        }));
        return command;
    }

    private static void Run(ChatConversation conversation, int maxNewTokens, SamplingOptions options, bool interactive)
    {
        var totals = new SessionTotals();
        CancellationTokenSource? replying = null;
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            var reply = replying;
            if (reply is null) return; // between replies Ctrl-C ends the session as usual
            e.Cancel = true;
            reply.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            while (true)
            {
                if (interactive) Console.Write("> ");
                var line = Console.ReadLine();
                if (line is null) break;
                line = line.Trim();
                if (line.Length == 0) continue;
                if (line == "/exit") break;
                if (line.StartsWith('/'))
                {
                    Obey(conversation, line, totals);
                    continue;
                }
                using var cancel = new CancellationTokenSource();
                replying = cancel;
                try
                {
                    foreach (var piece in conversation.Reply(line, maxNewTokens, options, cancel.Token)) Console.Write(piece);
                    Console.WriteLine();
                }
                catch (OperationCanceledException)
                {
                    Console.WriteLine();
                    Console.Error.WriteLine("kangaroo: reply stopped");
                }
                finally
                {
                    replying = null;
                }
                totals.Add(conversation.Decoder.Stats);
                if (conversation.DroppedTokens > 0)
                    Console.Error.WriteLine($"kangaroo: note: the conversation outgrew the context; its oldest {conversation.DroppedTokens} tokens were left out of that reply's prompt");
            }
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    /// <summary>A line starting with '/'.</summary>
    private static void Obey(ChatConversation conversation, string line, SessionTotals totals)
    {
        var space = line.IndexOf(' ');
        var (name, argument) = space < 0 ? (line, "") : (line[..space], line[(space + 1)..].Trim());
        switch (name)
        {
            case "/reset":
                conversation.Reset();
                Console.Error.WriteLine("kangaroo: conversation reset");
                break;
            case "/system":
                conversation.System = argument.Length == 0 ? null : argument;
                Console.Error.WriteLine(argument.Length == 0 ? "kangaroo: system message removed" : "kangaroo: system message set");
                break;
            case "/stats":
                Console.WriteLine(totals.Describe(conversation.Decoder));
                break;
            default:
                Console.Error.WriteLine($"kangaroo: unknown command {name}: {Help}");
                break;
        }
    }

    /// <summary>What the replies of a session added up to.</summary>
    private sealed class SessionTotals
    {
        private readonly List<int> _acceptLengths = [];
        private DecoderStats? _last;
        private int _replies, _tokens;
        private double _decodeSeconds;

        public void Add(DecoderStats stats)
        {
            _last = stats;
            _replies++;
            _tokens += stats.GeneratedTokens;
            _decodeSeconds += (stats.Total - stats.Prefill).TotalSeconds;
            _acceptLengths.AddRange(stats.AcceptLengths);
        }

        public string Describe(Decoder decoder)
        {
            if (_last is not { } last) return "no replies yet";
            var speculative = decoder is SelfSpeculativeDecoder;
            string Compression(IReadOnlyCollection<int> accept) => speculative && accept.Count > 0
                ? string.Create(CultureInfo.InvariantCulture, $", compression rate {accept.Average():F2}, CTAR(1..6) {string.Join(" ", Enumerable.Range(1, 6).Select(w => DecoderStats.CtarOf(accept, w).ToString("F2", CultureInfo.InvariantCulture)))}")
                : "";
            return string.Create(CultureInfo.InvariantCulture,
                $"last reply: {last.GeneratedTokens} tokens, {last.DecodeTokensPerSecond:F1} tok/s{Compression(last.AcceptLengths)}; prompt {last.PromptTokens} tokens, " +
                $"{last.ReusedTokens} kept in the KV cache, {last.PromptTokens - last.ReusedTokens} computed\n" +
                $"session: {_replies} replies, {_tokens} tokens, {_tokens / Math.Max(1e-9, _decodeSeconds):F1} tok/s{Compression(_acceptLengths)} (decoder {decoder.Name})");
        }
    }
}
