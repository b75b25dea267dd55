using System.CommandLine;
using Kangaroo.Native.Kernels;

namespace Kangaroo.Native.Cli;

/// <summary><c>kangaroo devices</c>: what compute devices exist here and which can be used.</summary>
public static class DevicesCommand
{
    public static Command Create()
    {
        var command = new Command("devices", "List compute devices and why any is unusable");
        command.SetAction(_ => CliRunner.Guard(() =>
        {
            foreach (var name in Devices.Names.Where(n => n != "auto"))
            {
                try
                {
                    using var device = Devices.Create(name);
                    Console.WriteLine($"{name,-10} usable   {device.Name}");
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or NotSupportedException)
                {
                    Console.WriteLine($"{name,-10} missing  {e.Message}");
                }
            }
            return 0;
        }));
        return command;
    }
}
