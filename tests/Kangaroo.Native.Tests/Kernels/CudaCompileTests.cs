using System.Reflection;
using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime.Cuda;
using Kangaroo.Native.Kernels.Ilgpu;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>
/// The CUDA tier that needs no GPU: ILGPU's PTX backend compiles every kernel of
/// src/Kernels/Ilgpu (generic ones once per weight reader, every block type's included) for Volta, Ampere and Hopper. Kernels are
/// found by reflection ([IlgpuKernel]), and a guard fails if a kernel class exposes an unmarked
/// method, so a new kernel that does not compile for CUDA fails here.
/// </summary>
public sealed class CudaCompileTests
{
    private const string KernelNamespace = "Kangaroo.Native.Kernels.Ilgpu";
    private static readonly Assembly KernelAssembly = typeof(IlgpuDevice).Assembly;

    /// <summary>Every kernel instantiation: non-generic kernels as they are, generic ones closed over each
    /// weight reader their constraint admits (the block matmul over the quantized readers only); the generic
    /// block readers are closed over each block layout their constraint admits.</summary>
    internal static IReadOnlyList<(MethodInfo Method, KernelGrouping Grouping)> Kernels()
    {
        var structs = KernelAssembly.GetTypes().Where(t => t.IsValueType && t.Namespace == KernelNamespace).OrderBy(t => t.Name).ToList();
        var readers = structs
            .Where(t => typeof(IWeightRows).IsAssignableFrom(t))
            .SelectMany(t => t.IsGenericTypeDefinition ? Closed(t, structs) : [t])
            .ToList();
        var result = new List<(MethodInfo, KernelGrouping)>();
        foreach (var method in KernelAssembly.GetTypes().SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)))
        {
            var attribute = method.GetCustomAttribute<IlgpuKernelAttribute>();
            if (attribute is null) continue;
            if (method.IsGenericMethodDefinition)
            {
                var constraints = method.GetGenericArguments()[0].GetGenericParameterConstraints();
                result.AddRange(readers.Where(r => constraints.All(c => c.IsAssignableFrom(r))).Select(r => (method.MakeGenericMethod(r), attribute.Grouping)));
            }
            else result.Add((method, attribute.Grouping));
        }
        return result;
    }

    private static IEnumerable<Type> Closed(Type reader, IReadOnlyList<Type> structs)
    {
        var constraints = reader.GetGenericArguments()[0].GetGenericParameterConstraints();
        return structs.Where(s => !s.IsGenericTypeDefinition && constraints.All(c => c.IsAssignableFrom(s))).Select(s => reader.MakeGenericType(s));
    }

    [Fact]
    public void Every_kernel_class_method_is_marked_and_discovered()
    {
        var kernelClasses = KernelAssembly.GetTypes()
            .Where(t => t.Namespace == KernelNamespace && t.IsAbstract && t.IsSealed && t.Name.EndsWith("Kernel", StringComparison.Ordinal))
            .ToList();
        Assert.True(kernelClasses.Count >= 9, $"found only {kernelClasses.Count} kernel classes");
        var unmarked = kernelClasses
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly)
                .Where(m => !m.IsPrivate && !m.IsSpecialName && m.GetCustomAttribute<IlgpuKernelAttribute>() is null)
                .Select(m => $"{t.Name}.{m.Name}"))
            .ToList();
        Assert.True(unmarked.Count == 0, $"kernel methods without [IlgpuKernel] (not compiled for CUDA here, and IlgpuDevice refuses to load them): {string.Join(", ", unmarked)}");
        // Every static method anywhere in the folder that looks like a kernel entry point must be marked too.
        var entryLike = KernelAssembly.GetTypes()
            .Where(t => t.Namespace == KernelNamespace)
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Where(m => m.ReturnType == typeof(void) && m.GetParameters() is [{ ParameterType: var first }, ..] && first == typeof(Index1D))
            .Where(m => m.GetCustomAttribute<IlgpuKernelAttribute>() is null)
            .Select(m => $"{m.DeclaringType!.Name}.{m.Name}")
            .ToList();
        Assert.True(entryLike.Count == 0, $"unmarked methods taking Index1D: {string.Join(", ", entryLike)}");
        var discovered = Kernels().Select(k => k.Method.DeclaringType!).Distinct().ToList();
        Assert.All(kernelClasses, c => Assert.Contains(c, discovered));
    }

    [Theory]
    [InlineData("SM_70")]
    [InlineData("SM_80")]
    [InlineData("SM_90")]
    public void Every_kernel_compiles_to_PTX(string architectureName)
    {
        var architecture = (CudaArchitecture)typeof(CudaArchitecture).GetField(architectureName)!.GetValue(null)!;
        // PTX ISA 7.8 (CUDA 11.8) is the oldest that targets sm_90; drivers from 2022 on accept it.
        var instructionSet = CudaInstructionSet.ISA_78;
        using var context = Context.Create(builder => builder.EnableAlgorithms());
        using var backend = new PTXBackend(context, new CudaCapabilityContext(architecture), architecture, instructionSet, null);
        var failures = new List<string>();
        var kernels = Kernels();
        Assert.True(kernels.Count >= 15, $"discovered only {kernels.Count} kernel instantiations");
        foreach (var blocks in new[] { typeof(ScaleAndWords<Q8_0Layout>), typeof(ScaleAndWords<Q4_0Layout>), typeof(BlockWords<Q4_1Layout>),
                     typeof(ScaleAndWords<Q5_0Layout>), typeof(BlockWords<Q5_1Layout>), typeof(BlockWords<Q2_KLayout>), typeof(ScaleAndWords<Q3_KLayout>),
                     typeof(BlockWords<Q4_KLayout>), typeof(BlockWords<Q5_KLayout>), typeof(ScaleAndWords<Q6_KLayout>) })
            Assert.Contains(kernels, k => k.Method.Name == nameof(MatMulKernel.MatMulBlocks) && k.Method.GetGenericArguments()[0] == blocks);
        foreach (var (method, grouping) in kernels)
        {
            var name = $"{method.DeclaringType!.Name}.{method.Name}{(method.IsGenericMethod ? $"<{Name(method.GetGenericArguments()[0])}>" : "")}";
            try
            {
                var entry = grouping == KernelGrouping.Explicit
                    ? EntryPointDescription.FromExplicitlyGroupedKernel(method)
                    : EntryPointDescription.FromImplicitlyGroupedKernel(method);
                var ptx = ((PTXCompiledKernel)backend.Compile(entry, default)).PTXAssembly;
                // ILGPU targets the lowest architecture with the features a kernel needs (sm_80 PTX runs on sm_90).
                var target = System.Text.RegularExpressions.Regex.Match(ptx, @"\.target sm_(\d+)");
                if (!target.Success || int.Parse(target.Groups[1].Value) > architecture.Major * 10 + architecture.Minor || !ptx.Contains(".entry", StringComparison.Ordinal))
                    failures.Add($"{name}: PTX lacks an .entry or a .target at or below {architectureName}");
            }
            catch (Exception e)
            {
                failures.Add($"{name}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} of {kernels.Count} kernels fail to compile for {architectureName}:\n{string.Join("\n", failures)}");
    }

    private static string Name(Type type) => type.IsGenericType ? $"{type.Name[..type.Name.IndexOf('`')]}<{Name(type.GetGenericArguments()[0])}>" : type.Name;
}
