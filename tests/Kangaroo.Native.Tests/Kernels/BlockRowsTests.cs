using ILGPU;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Kangaroo.Native.Kernels.Ilgpu;
using static Kangaroo.Native.Tests.Kernels.Numerics;

namespace Kangaroo.Native.Tests.Kernels;

/// <summary>The ILGPU block matmul's path for types with offsets (value = scale * q + offset), which no
/// shipped type takes yet: a test reader (<see cref="OffsetRows"/>) through
/// <see cref="MatMulKernel.MatMulBlocks{TBlocks}"/> on ILGPU's CPU emulator against the exact sum, and
/// compiled to PTX, so a K-quant reader only has to read its blocks right.</summary>
public sealed class BlockRowsTests
{
    [Fact]
    public void MatMul_adds_each_units_offset_times_its_inputs()
    {
        const int inDim = 24, outDim = 5;
        using var context = Context.Create(builder => builder.CPU(new CPUDevice(2, 1, 2)).EnableAlgorithms());
        using var accelerator = context.GetCPUDevice(0).CreateAccelerator(context);
        var random = new Random(21);
        var units = outDim * inDim / 4;
        var scales = Enumerable.Range(0, units).Select(_ => random.NextSingle() / 32).ToArray();
        var offsets = Enumerable.Range(0, units).Select(_ => random.NextSingle() - 0.5f).ToArray();
        var words = Enumerable.Range(0, units).Select(_ => random.Next()).ToArray();
        var w = new float[outDim * inDim];
        for (var i = 0; i < w.Length; i++) w[i] = scales[i / 4] * (sbyte)(words[i / 4] >> (8 * (i % 4))) + offsets[i / 4];
        foreach (var rows in new[] { 1, 3, 9 })
        {
            var x = Random(rows * inDim, seed: rows);
            using var s = accelerator.Allocate1D(scales);
            using var m = accelerator.Allocate1D(offsets);
            using var q = accelerator.Allocate1D(words);
            using var input = accelerator.Allocate1D(x);
            using var output = accelerator.Allocate1D<float>(rows * outDim);
            var kernel = accelerator.LoadStreamKernel<ArrayView<float>, OffsetRows, ArrayView<float>, int, int, int, int>(MatMulKernel.MatMulBlocks);
            kernel(new KernelConfig(outDim, 2), input.View, new OffsetRows(s.View, m.View, q.View), output.View, rows, inDim, outDim, 0);
            var actual = output.GetAsArray1D();
            for (var r = 0; r < rows; r++)
            for (var o = 0; o < outDim; o++)
            {
                double exact = 0, magnitude = 0;
                for (var i = 0; i < inDim; i++)
                {
                    exact += (double)w[o * inDim + i] * x[r * inDim + i];
                    magnitude += Math.Abs((double)w[o * inDim + i] * x[r * inDim + i]) + Math.Abs((double)offsets[(o * inDim + i) / 4] * x[r * inDim + i]);
                }
                Assert.True(Math.Abs(actual[r * outDim + o] - exact) <= 2 * (inDim + 8) * U * magnitude, $"rows {rows} [{r}, {o}]: {actual[r * outDim + o]:R} vs {exact:R}");
            }
        }
    }

    [Fact]
    public void MatMul_with_offsets_compiles_to_PTX()
    {
        using var context = Context.Create(builder => builder.EnableAlgorithms());
        using var backend = new PTXBackend(context, new CudaCapabilityContext(CudaArchitecture.SM_80), CudaArchitecture.SM_80, CudaInstructionSet.ISA_78, null);
        var method = typeof(MatMulKernel).GetMethod(nameof(MatMulKernel.MatMulBlocks))!.MakeGenericMethod(typeof(OffsetRows));
        var ptx = ((PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), default)).PTXAssembly;
        Assert.Contains(".entry", ptx);
    }

    /// <summary>A test block type: per unit of 4 values a float scale, a float offset and a word of 4 int8 quants.</summary>
    public readonly struct OffsetRows(ArrayView<float> scales, ArrayView<float> offsets, ArrayView<int> quants) : IBlockRows
    {
        public readonly ArrayView<float> Scales = scales;
        public readonly ArrayView<float> Offsets = offsets;
        public readonly ArrayView<int> Quants = quants;

        public bool HasOffset => true;

        public float Read(long index) => Scales[index >> 2] * ((Quants[index >> 2] << (24 - 8 * (int)(index & 3))) >> 24) + Offsets[index >> 2];

        public float Read4(long unit, out float offset, out float q0, out float q1, out float q2, out float q3)
        {
            var word = Quants[unit];
            offset = Offsets[unit];
            q0 = (word << 24) >> 24;
            q1 = (word << 16) >> 24;
            q2 = (word << 8) >> 24;
            q3 = word >> 24;
            return Scales[unit];
        }
    }
}
