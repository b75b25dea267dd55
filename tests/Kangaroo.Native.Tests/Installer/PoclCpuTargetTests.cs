using System.Diagnostics;

namespace Kangaroo.Native.Tests.Installer;

/// <summary>
/// scripts/pocl-cpu-target.sh, which install-opencl.sh sources to configure PoCL on a CPU that LLVM 15
/// cannot name, run by bash on recorded <c>llc --version</c> outputs and /proc/cpuinfo flag lines
/// (Installer/fixtures: CPUs LLVM names, and CPUs newer than it on x86-64 and aarch64).
/// </summary>
public sealed class PoclCpuTargetTests
{
    private static string Script => Path.Combine(SharedData.RepositoryRoot, "scripts", "pocl-cpu-target.sh");

    private static string Fixture(string name) =>
        Path.Combine(SharedData.RepositoryRoot, "tests", "Kangaroo.Native.Tests", "Installer", "fixtures", name);

    /// <summary>Runs <paramref name="script"/> in bash with the functions sourced; $1, $2... are <paramref name="args"/>.</summary>
    private static (int ExitCode, string Stdout, string Stderr) Bash(string script, params string[] args)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in (string[])["-c", $"set -euo pipefail; source \"$0\"; {script}", Script, .. args]) start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), "bash did not finish in 30 s");
        return (process.ExitCode, stdout.Result, stderr.Result);
    }

    private const string Unknown = "LLVM 15 cannot name this CPU (llc: Host CPU: (unknown))";

    [Theory]
    [InlineData("zen5-epyc", "x86-64-v4", $"{Unknown}; its flags have AVX-512 F/BW/CD/DQ/VL, AVX2, FMA and BMI2 (the x86-64-v4 level)")]
    [InlineData("granite-rapids", "x86-64-v4", $"{Unknown}; its flags have AVX-512 F/BW/CD/DQ/VL, AVX2, FMA and BMI2 (the x86-64-v4 level)")]
    [InlineData("arrow-lake", "x86-64-v3", $"{Unknown}; its flags have AVX2, FMA and BMI2 (the x86-64-v3 level) but not avx512f avx512bw avx512cd avx512dq avx512vl for x86-64-v4")]
    [InlineData("sse42-vm", "x86-64-v2", $"{Unknown}; its flags have SSE4.2, SSSE3 and POPCNT (the x86-64-v2 level) but not avx avx2 bmi1 bmi2 f16c fma movbe xsave for x86-64-v3")]
    [InlineData("grace-aarch64", "neoverse-n2", $"{Unknown}; its features have SVE2, BF16, I8MM and Armv8.5 (as Neoverse N2)")]
    [InlineData("zen3-epyc", "znver3", "LLVM names this CPU itself")]
    [InlineData("skylake-sp", "skylake-avx512", "LLVM names this CPU itself")]
    public void ChoosesTheClosestTargetLlvmKnows(string cpu, string target, string reason)
    {
        var (exitCode, stdout, stderr) = Bash("pocl_cpu_target \"$(cat \"$1\")\" \"$(cat \"$2\")\"", Fixture(cpu + ".llc"), Fixture(cpu + ".flags"));
        Assert.True(exitCode == 0 && stderr.Length == 0, $"exit {exitCode}: {stderr}");
        Assert.Equal($"{target}: {reason}\n", stdout);
    }

    /// <summary>The installer passes a target only where LLVM cannot name the CPU; where it can, PoCL detects it.</summary>
    [Theory]
    [InlineData("zen5-epyc", "")]
    [InlineData("grace-aarch64", "")]
    [InlineData("zen3-epyc", "znver3\n")]
    [InlineData("skylake-sp", "skylake-avx512\n")]
    public void LlcHostCpuIsEmptyWhereLlvmCannotNameTheCpu(string cpu, string expected)
    {
        var (exitCode, stdout, stderr) = Bash("llc_host_cpu \"$(cat \"$1\")\"", Fixture(cpu + ".llc"));
        Assert.True(exitCode == 0 && stderr.Length == 0, $"exit {exitCode}: {stderr}");
        Assert.Equal(expected, stdout);
    }

    /// <summary>The flags line is read with or without its "flags :" label, and with only some flags:
    /// the levels fall one by one as their flags go missing.</summary>
    [Theory]
    [InlineData("sse2 ssse3", "x86-64", "its flags lack cx16 lahf_lm popcnt sse4_1 sse4_2 for x86-64-v2, so the x86-64 baseline")]
    [InlineData("", "x86-64", "its flags lack cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3 for x86-64-v2, so the x86-64 baseline")]
    [InlineData("flags\t: cx16 lahf_lm popcnt sse4_1 sse4_2 ssse3 avx avx2 bmi1 bmi2 f16c fma movbe xsave avx512f", "x86-64-v3",
                "but not avx512bw avx512cd avx512dq avx512vl for x86-64-v4")]
    public void FlagsDecideTheX86Level(string flags, string target, string reasonEnd)
    {
        var (exitCode, stdout, _) = Bash("pocl_cpu_target \"$(cat \"$1\")\" \"$2\"", Fixture("zen5-epyc.llc"), flags);
        Assert.Equal(0, exitCode);
        Assert.StartsWith($"{target}: {Unknown}; ", stdout);
        Assert.EndsWith(reasonEnd + "\n", stdout);
    }

    [Fact]
    public void InstallerParses()
    {
        var (exitCode, _, stderr) = Bash("bash -n \"$1\"", Path.Combine(SharedData.RepositoryRoot, "scripts", "install-opencl.sh"));
        Assert.True(exitCode == 0, stderr);
    }
}
