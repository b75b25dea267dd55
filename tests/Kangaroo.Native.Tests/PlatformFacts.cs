namespace Kangaroo.Native.Tests;

/// <summary>Why a test of POSIX behaviour cannot run here, or null where it can.</summary>
internal static class Posix
{
    public static string? SkipReason =>
        OperatingSystem.IsWindows() ? "needs POSIX FIFOs, device files, symbolic links and shell redirections (not on Windows)" : null;
}

/// <summary>A fact about POSIX behaviour (FIFOs, /dev files, closed descriptors): skipped visibly elsewhere.</summary>
public sealed class PosixFactAttribute : FactAttribute
{
    public PosixFactAttribute() => Skip = Posix.SkipReason;
}

/// <summary>A theory about POSIX behaviour: skipped visibly elsewhere.</summary>
public sealed class PosixTheoryAttribute : TheoryAttribute
{
    public PosixTheoryAttribute() => Skip = Posix.SkipReason;
}
