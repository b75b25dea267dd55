using System.CommandLine;
using System.Text.Json;
using Kangaroo.Native.Loader;
using Kangaroo.Native.Templates;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo template</c>: renders a model's chat template over a conversation and prints exactly the text.</summary>
internal static class TemplateCommand
{
    public static Command Create()
    {
        var template = new Option<string>("--template") { Description = "tokenizer_config.json (its chat_template, bos_token, eos_token), a GGUF model (its tokenizer.chat_template) or a text file holding the template", Required = true };
        var messages = new Option<string>("--messages") { Description = "JSON file: the conversation, a list of {role, content, ...}", Required = true };
        var addGenerationPrompt = new Option<bool>("--add-generation-prompt") { Description = "end with the prompt for the assistant's next message" };
        var bosToken = new Option<string>("--bos-token") { Description = "bos_token (default: tokenizer_config.json's, else empty)" };
        var eosToken = new Option<string>("--eos-token") { Description = "eos_token (default: tokenizer_config.json's, else empty)" };
        var tools = new Option<string>("--tools") { Description = "JSON file: the tools, a list (undefined in the template when not given)" };
        var command = new Command("template", "Render a chat template over a conversation (as transformers' apply_chat_template renders it)")
        {
            template, messages, addGenerationPrompt, bosToken, eosToken, tools,
        };
        command.SetAction(result => CliRunner.Guard(() =>
        {
            var chat = ChatTemplate.Load(result.GetValue(template)!);
            var conversation = ReadList(result.GetValue(messages)!, "--messages");
            var toolList = result.GetValue(tools) is { } toolsPath ? ReadList(toolsPath, "--tools") : null;
            string text;
            try
            {
                text = chat.Render(conversation, result.GetValue(addGenerationPrompt), toolList, result.GetValue(bosToken), result.GetValue(eosToken));
            }
            catch (ChatTemplateRaisedException e)
            {
                throw new FormatException($"the chat template refused the conversation: {e.Message}");
            }
            Console.Out.Write(text);
            return 0;
        }));
        return command;
    }

    /// <summary>A JSON file holding a list, as template values.</summary>
    private static List<object?> ReadList(string path, string option)
    {
        JsonElement root;
        try
        {
            using var document = JsonText.Parse(File.ReadAllText(path));
            root = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new FormatException($"{option} {path} is not valid JSON: {ErrorText.Json(e)}");
        }
        if (root.ValueKind != JsonValueKind.Array) throw new FormatException($"{option} {path} must hold a JSON list, not {root.ValueKind.ToString().ToLowerInvariant()}");
        return root.EnumerateArray().Cast<object?>().ToList();
    }
}
