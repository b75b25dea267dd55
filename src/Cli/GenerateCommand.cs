using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Kangaroo.Native.Engine;
using Kangaroo.Native.Engine.Decoding;
using Kangaroo.Native.Engine.Kangaroo;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo generate</c>: streams a continuation of a prompt, or prints one JSON object.</summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var modelArguments = new ModelArguments(withTokenizer: true);
        var prompt = new Option<string>("--prompt") { Description = "prompt text (BOS is added)" };
        var promptIds = new Option<string>("--prompt-ids") { Description = "prompt as comma-separated token ids, BOS included" };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "tokens to generate at most; clamped so that prompt + generated tokens fit the context", DefaultValueFactory = _ => 256 };
        var json = new Option<bool>("--json") { Description = "print one JSON object instead of streaming text" };
        var chat = new Option<bool>("--chat") { Description = "--prompt is a user message: reply to it through the chat template (one turn; `kangaroo chat` for more)" };
        var sampling = new SamplingArguments();
        var speculation = new SpeculationArguments(withDecoder: true);
        var chatArguments = new ChatArguments(withSystem: true);

        var command = new Command("generate", "Generate text from a prompt, or a chat reply to it") { prompt, promptIds, maxNew, json, chat };
        modelArguments.AddTo(command);
        sampling.AddTo(command);
        speculation.AddTo(command);
        chatArguments.AddTo(command);
        command.SetAction(result => CliRunner.Guard(() =>
        {
            if (result.GetValue(prompt) is not null == result.GetValue(promptIds) is not null)
                throw new ArgumentException("give exactly one of --prompt and --prompt-ids");
            var asChat = result.GetValue(chat);
            if (asChat && result.GetValue(promptIds) is not null) throw new ArgumentException("--chat takes the user message as --prompt, not --prompt-ids");
            foreach (var chatOnly in new Option[] { chatArguments.System, chatArguments.Template })
                if (!asChat && result.GetResult(chatOnly) is not null) throw new ArgumentException($"{chatOnly.Name} applies to --chat only");
            if (result.GetValue(maxNew) < 0) throw new ArgumentException($"--max-new-tokens {result.GetValue(maxNew)} must be >= 0");
            var options = sampling.Create(result);

            using var session = modelArguments.Open(result);
            var ids = result.GetValue(promptIds) is { } list ? ParseIds(list)
                : asChat ? chatArguments.Load(result, session).Encode(session.Tokenizer!, result.GetValue(chatArguments.System) is { } system
                    ? [("system", system), ("user", result.GetValue(prompt)!)] : [("user", result.GetValue(prompt)!)])
                : session.EncodePrompt(result.GetValue(prompt)!);
            var run = speculation.CreateDecoder(session, result);
            var requested = result.GetValue(maxNew);
            var budget = run.Budget(ids.Length, requested);
            if (budget < requested && ids.Length <= session.Model.Context)
                Console.Error.WriteLine($"kangaroo: note: --max-new-tokens {requested} clamped to {budget}: the prompt takes {ids.Length} of the context's {session.Model.Context} positions");

            var tokens = run.Generate(ids, requested, options); // validates the prompt before anything is printed
            var asJson = result.GetValue(json);
            var stream = session.Tokenizer?.NewStream();
            if (!asJson && !asChat && stream is not null) Console.Write(ids.Select(stream.Append).Aggregate("", string.Concat)); // a chat reply comes alone, as `chat` prints it
            var generated = new List<int>();
            foreach (var token in tokens)
            {
                generated.Add(token);
                if (!asJson && stream is not null) Console.Write(stream.Append(token));
                else if (!asJson) Console.Write(generated.Count == 1 ? $"{token}" : $",{token}");
            }
            if (asJson) WriteJson(session, run, ids, generated);
            else Console.WriteLine(stream?.Flush());
            return 0;
        }));
        return command;
    }

    /// <summary>"1, 2,3" to token ids; an empty entry ("1,,2", a trailing comma) is refused, not skipped.</summary>
    public static int[] ParseIds(string list)
    {
        var ids = list.Split(',', StringSplitOptions.TrimEntries);
        var result = new int[ids.Length];
        for (var i = 0; i < ids.Length; i++)
            if (!int.TryParse(ids[i], NumberStyles.None, CultureInfo.InvariantCulture, out result[i]))
                throw new ArgumentException($"--prompt-ids '{list}' is not a comma-separated list of token ids (entry {i + 1} is '{ids[i]}')");
        return result;
    }

    private static void WriteJson(InferenceSession session, Decoder run, int[] promptIds, List<int> generated)
    {
        var stats = run.Stats;
        var buffer = new MemoryStream();
        using var writer = new Utf8JsonWriter(buffer, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
        writer.WriteStartObject();
        writer.WritePropertyName("prompt_ids");
        JsonSerializer.Serialize(writer, promptIds);
        writer.WritePropertyName("generated_ids");
        JsonSerializer.Serialize(writer, generated);
        writer.WriteString("text", session.Tokenizer?.Decode(generated) ?? "");
        writer.WriteString("stop", run.Stop == StopReason.StopToken ? "stop_token" : "length");
        writer.WriteString("device", session.Device.Kind);
        writer.WriteString("decoder", run.Name);
        writer.WriteNumber("tokens_per_second", Math.Round(stats.TokensPerSecond, 2));
        writer.WriteNumber("target_forward_passes", stats.TargetForwardPasses);
        writer.WritePropertyName("accept_lengths");
        JsonSerializer.Serialize(writer, stats.AcceptLengths);
        writer.WriteNumber("compression_rate", Math.Round(stats.CompressionRate, 4));
        writer.WriteStartObject("ctar");
        for (var w = 1; w <= 6; w++) writer.WriteNumber(w.ToString(), Math.Round(stats.Ctar(w), 4));
        writer.WriteEndObject();
        if (run is SelfSpeculativeDecoder { Controller: { } controller })
        {
            writer.WritePropertyName("plan");
            JsonSerializer.Serialize(writer, controller.Plan);
            writer.WriteString("choice", controller.Plan.Describe());
            writer.WriteNumber("fallbacks", controller.Fallbacks);
        }
        writer.WriteEndObject();
        writer.Flush();
        Console.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray())); // through Console.Out, whose failures say "stdout"
    }
}
