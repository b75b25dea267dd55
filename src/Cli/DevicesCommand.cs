using Kangaroo.Native.Kernels;
using Kangaroo.Native.Numerics;
using Spectre.Console;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo devices</c>: every compute device, its memory and limits, or why it cannot be used.</summary>
internal static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices", "List compute devices, their memory and limits, and why any is unusable");
        command.SetAction(_ => CliRunner.Guard(() =>
        {
            if (Console.IsOutputRedirected) AnsiConsole.Profile.Width = 160;
            var table = new Table().AddColumns("--device", "usable", "name", "memory", "threads/group", "notes");
            using (var cpu = Devices.Create("cpu")) table.AddRow("cpu", "yes", Markup.Escape(cpu.Name), "host", "-", "managed, vectorised implementation");
            using (var reference = Devices.Create("reference")) table.AddRow("reference", "yes", Markup.Escape(reference.Name), "host", "-", "the scalar oracle the kernels are tested against (slow)");
            foreach (var d in Devices.Describe())
            {
                table.AddRow(d.Kind, d.Usable ? "yes" : "[red]no[/]", Markup.Escape(d.Name), d.MemoryBytes > 0 ? $"{d.MemoryBytes / (1024.0 * 1024 * 1024):F1} GiB" : "host",
                    d.MaxThreadsPerGroup.ToString(), Markup.Escape(d.Note));
            }
            if (!Devices.Describe().Any(d => d.Kind == "cuda"))
                table.AddRow("cuda", "[red]no[/]", "-", "-", "-", "no NVIDIA GPU with a usable CUDA driver found");
            if (!Devices.Describe().Any(d => d.Kind == "opencl"))
                table.AddRow("opencl", "[red]no[/]", "-", "-", "-", "no OpenCL platform found (install PoCL 4+: scripts/install-opencl.sh, or a GPU vendor's OpenCL driver)");
            AnsiConsole.Write(table);
            using var auto = Devices.Create("auto");
            AnsiConsole.MarkupLine($"--device auto chooses [bold]{auto.Kind}[/] here.");
            var perBlock = ElementTypes.All.Select(t => t.BlockLength == 1 ? $"{t.Name} {t.BlockBytes} B" : $"{t.Name} {t.BlockBytes} B per {t.BlockLength}");
            AnsiConsole.MarkupLine($"Every device keeps weights in their type; bytes per weight: {string.Join(", ", perBlock)} (--weights {string.Join("|", ElementTypes.Quantizable.Select(t => t.Name))} quantizes at load).");
            return 0;
        }));
        return command;
    }
}
