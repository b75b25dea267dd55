using System.CommandLine;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo convert</c>: llama2.c checkpoint to a Hugging Face model directory.</summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var command = new Command("convert", "Convert a llama2.c checkpoint into a Hugging Face directory (config.json, model.safetensors, tokenizer.model)");
        command.SetAction(_ => CliRunner.Guard(() => throw new InvalidOperationException("convert is not available yet")));
        return command;
    }
}
