using Kangaroo.Native.Numerics;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo convert</c>: any model the loader reads (llama2.c checkpoint, Hugging Face
/// directory, GGUF) to a Hugging Face directory, or to a GGUF file when <c>--out</c> ends in .gguf.</summary>
internal static class ConvertCommand
{
    public static Command Create()
    {
        var model = new Option<string>("--model") { Description = "llama2.c .bin, model directory or GGUF file to convert (default: the embedded stories260K)" };
        var output = new Option<string>("--out") { Description = "output directory, or a FILE.gguf", Required = true };
        string[] blocks = [.. ElementTypes.Quantizable.Select(t => t.Name)];
        var dtype = new Option<string>("--dtype") { Description = $"f32|f16|bf16, and {string.Join("|", blocks)} for GGUF", DefaultValueFactory = _ => "f32" }
            .AcceptOnlyFromAmong(["f32", "f16", "bf16", .. blocks]);
        var command = new Command("convert", "Convert a model into a Hugging Face directory (config.json, model.safetensors, tokenizer.model) or a GGUF file")
        {
            model, output, dtype,
        };
        command.SetAction(result => CliRunner.Guard(() =>
        {
            var type = ElementTypes.Parse(result.GetValue(dtype)!);
            using var source = ModelCheckpoint.Open(result.GetValue(model) ?? CliRunner.DefaultModel);
            var target = result.GetValue(output)!;
            var progress = new ProgressLine();
            void Show(ConversionProgress p) => progress.Show(p.Bytes, p.TotalBytes,
                $"converting: {p.Tensors}/{p.TotalTensors} tensors, {ProgressLine.Megabytes(p.Bytes)}/{ProgressLine.Megabytes(p.TotalBytes)} MB", force: p.Tensors == p.TotalTensors);
            IReadOnlyList<string> written;
            try
            {
                if (target.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase))
                {
                    CheckpointConverter.ConvertToGguf(source, target, type, Show);
                    written = [target];
                }
                else
                {
                    written = CheckpointConverter.Convert(source, target, type, Show);
                }
            }
            finally
            {
                progress.Finish();
            }
            foreach (var file in written) Console.WriteLine(file);
            return 0;
        }));
        return command;
    }
}
