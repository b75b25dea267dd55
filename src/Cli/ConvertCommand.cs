using System.CommandLine;
using Kangaroo.Native.Loader;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo convert</c>: llama2.c checkpoint (or any model the loader reads) to a Hugging Face directory.</summary>
public static class ConvertCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "llama2.c .bin or model directory to convert (default: the embedded stories260K)" };
        var output = new Option<string>("--out") { Description = "output directory", Required = true };
        var dtype = new Option<string>("--dtype") { Description = "f32|f16|bf16", DefaultValueFactory = _ => "f32" };
        var command = new Command("convert", "Convert a llama2.c checkpoint into a Hugging Face directory (config.json, model.safetensors, tokenizer.model)")
        {
            model, output, dtype,
        };
        command.SetAction(result => CliRunner.Guard(() =>
        {
            var type = DTypes.ParseOption(result.GetValue(dtype)!);
            using var source = ModelCheckpoint.Open(result.GetValue(model) ?? CliRunner.DefaultModel);
            foreach (var file in CheckpointConverter.Convert(source, result.GetValue(output)!, type)) Console.WriteLine(file);
            return 0;
        }));
        return command;
    }
}
