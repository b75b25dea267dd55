using System.CommandLine;
using Kangaroo.Native.Cli;

var root = new RootCommand("Kangaroo.Native: Llama inference with ILGPU kernels and Kangaroo self-speculative decoding")
{
    GenerateCommand.Create(),
    ChatCommand.Create(),
    ServeCommand.Create(),
    BenchCommand.Create(),
    DevicesCommand.Create(),
    ConvertCommand.Create(),
    TrainAdapterCommand.Create(),
    TemplateCommand.Create(),
};
return CliRunner.Run(root, args);
