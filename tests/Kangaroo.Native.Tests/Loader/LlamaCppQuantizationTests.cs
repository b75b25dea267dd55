using static Kangaroo.Native.Tests.Loader.LlamaCppFiles;

namespace Kangaroo.Native.Tests.Loader;

/// <summary>
/// Our rounding of every type we write against bytes that llama.cpp itself wrote (../shared/models/*/SOURCE.md):
/// the same source values are quantized with <see cref="Quantization"/> and every block must equal
/// llama.cpp's. Three sources, three of llama.cpp's code paths:
/// <list type="bullet">
/// <item>gguf-kquants/TinyStories-656K-x2-*.gguf: llama.cpp's quantizer (`llama_model_quantize`, without an
/// importance matrix, so quantize_row_*_ref) in the mixes Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q4_1, Q5_0, Q5_1 and
/// Q4_0, on TinyStories-656K widened 2x, whose f32 source is rebuilt here as its SOURCE.md describes (the
/// f16 file's matrices block-diagonal, both copies equal; the embedding's rows repeated). Every quantized
/// tensor of each file is compared, whatever type the mix gave it: Q3_K, Q4_K, Q5_K, Q6_K, Q4_1, Q5_0, Q5_1
/// and Q4_0.</item>
/// <item>gguf/TinyStories-656K-Q8_0.gguf: llama.cpp's Hugging Face converter (Q8_0, GGUF-my-repo) from
/// TinyStories-656K's safetensors, q and k rows permuted as that converter permutes them.</item>
/// <item>gguf/stories260K-q8_0-v2.gguf: an early llama.cpp Q8_0 conversion of stories260K, from the
/// values of llama.cpp's own f32 conversion; its ffn_down rows (172 values) are not whole blocks, and
/// it quantized that tensor as one run of blocks across rows, which is compared the same way.</item>
/// </list>
/// The rounding is sensitive: quantizing x * (1/d) + 8.5 with one fused multiply-add instead of two
/// roundings changes 64 of the 49,152 Q4_0 blocks.
/// </summary>
public sealed class LlamaCppQuantizationTests
{
    /// <summary>The quantizer under test (the one call to re-point if it moves), for the type llama.cpp's tensor has.</summary>
    private static byte[] Ours(uint ggmlType, float[] values)
    {
        var type = ElementTypes.Parse(BlockTypes[ggmlType].Name.ToLowerInvariant());
        var bytes = new byte[type.ByteCount(values.Length)];
        Quantization.Quantize(type, values, bytes);
        return bytes;
    }

    private static string Model(params string[] path) => SharedData.Path(["models", .. path]);

    /// <summary>Blocks that differ between our quantization of <paramref name="values"/> and llama.cpp's tensor.</summary>
    private static int DifferingBlocks(Tensor theirs, float[] values)
    {
        Assert.Equal(theirs.Count, values.Length);
        var ours = Ours(theirs.Type, values);
        var size = BlockTypes[theirs.Type].Bytes;
        Assert.Equal(theirs.Bytes!.Length, ours.Length);
        var differing = 0;
        for (var b = 0; b < ours.Length; b += size)
            if (!ours.AsSpan(b, size).SequenceEqual(theirs.Bytes.AsSpan(b, size))) differing++;
        return differing;
    }

    private static void AssertAllBlocksEqual(IReadOnlyList<Tensor> theirs, Func<Tensor, float[]> source, int expectedTensors)
    {
        Assert.Equal(expectedTensors, theirs.Count);
        var report = theirs.Select(t => (Name: $"{t.Name} ({BlockTypes[t.Type].Name})", Blocks: t.Bytes!.Length / BlockTypes[t.Type].Bytes, Differing: DifferingBlocks(t, source(t)))).ToList();
        var differing = report.Where(r => r.Differing > 0).ToList();
        Assert.True(differing.Count == 0,
            $"blocks unlike llama.cpp's: {string.Join(", ", differing.Select(r => $"{r.Name} {r.Differing} of {r.Blocks}"))}");
    }

    /// <summary>Each file's quantized tensors, and the types its mix gave them (SOURCE.md's table).</summary>
    [Theory]
    [InlineData("Q4_K_M", "Q4_K x12, Q6_K x3")]
    [InlineData("Q5_K_M", "Q5_K x12, Q6_K x3")]
    [InlineData("Q6_K", "Q6_K x15")]
    [InlineData("Q3_K_M", "Q3_K x8, Q4_K x4, Q5_K x2, Q6_K x1")]
    [InlineData("Q4_1", "Q4_1 x14, Q6_K x1")]
    [InlineData("Q5_0", "Q5_0 x14, Q6_K x1")]
    [InlineData("Q5_1", "Q5_1 x14, Q6_K x1")]
    [InlineData("Q4_0", "Q4_0 x14, Q6_K x1")]
    public void Llama_cpps_quantizer_byte_for_byte(string mix, string types)
    {
        var theirs = ReadGguf(Model("gguf-kquants", $"TinyStories-656K-x2-{mix}.gguf"));
        var f16 = ReadGguf(Model("gguf", "TinyStories-656K-f16.gguf"));
        var quantized = theirs.Tensors.Where(t => BlockTypes.ContainsKey(t.Type)).ToList();
        Assert.Equal(types, string.Join(", ", quantized.GroupBy(t => BlockTypes[t.Type].Name).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} x{g.Count()}")));
        AssertAllBlocksEqual(quantized, t => t.Name == "token_embd.weight" ? RowsRepeated(f16[t.Name]) : BlockDiagonal(f16[t.Name]), expectedTensors: 15);
    }

    /// <summary>Each row twice, side by side: [W, W] (the widened model's embedding).</summary>
    private static float[] RowsRepeated(Tensor original)
    {
        var (columns, rows) = ((int)original.Dims[0], (int)original.Dims[1]);
        var values = original.Floats();
        var result = new float[2 * values.Length];
        for (var r = 0; r < rows; r++)
        {
            Array.Copy(values, r * columns, result, 2 * r * columns, columns);
            Array.Copy(values, r * columns, result, (2 * r + 1) * columns, columns);
        }
        return result;
    }

    /// <summary>Two copies of a matrix side by side: [[W, 0], [0, W]], rows of twice the length.</summary>
    private static float[] BlockDiagonal(Tensor original)
    {
        var (columns, rows) = ((int)original.Dims[0], (int)original.Dims[1]);
        var values = original.Floats();
        var result = new float[4 * values.Length];
        for (var r = 0; r < rows; r++)
        {
            Array.Copy(values, r * columns, result, r * 2 * columns, columns);
            Array.Copy(values, r * columns, result, (rows + r) * 2 * columns + columns, columns);
        }
        return result;
    }

    [Fact]
    public void Q8_0_is_llama_cpps_converter_byte_for_byte()
    {
        var theirs = ReadGguf(Model("gguf", "TinyStories-656K-Q8_0.gguf"));
        var directory = Model("TinyStories-656K");
        var hf = ReadSafeTensorsF32(Path.Combine(directory, "model.safetensors"));
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "config.json")));
        var heads = config.RootElement.GetProperty("num_attention_heads").GetInt32();
        var kvHeads = config.RootElement.GetProperty("num_key_value_heads").GetInt32();
        float[] Source(Tensor t)
        {
            if (t.Name == "token_embd.weight") return hf["lm_head.weight"].Values; // tied, stored once under lm_head
            var parts = t.Name.Split('.');
            var (module, permuteHeads) = parts[2] switch
            {
                "attn_q" => ("self_attn.q_proj", heads),
                "attn_k" => ("self_attn.k_proj", kvHeads),
                "attn_v" => ("self_attn.v_proj", 0),
                "attn_output" => ("self_attn.o_proj", 0),
                "ffn_gate" => ("mlp.gate_proj", 0),
                "ffn_up" => ("mlp.up_proj", 0),
                "ffn_down" => ("mlp.down_proj", 0),
                _ => throw new InvalidDataException($"unexpected Q8_0 tensor {t.Name}"),
            };
            var (shape, values) = hf[$"model.layers.{parts[1]}.{module}.weight"];
            return permuteHeads == 0 ? values : PermuteForAdjacentPairs(values, shape[0], shape[1], permuteHeads);
        }
        AssertAllBlocksEqual(theirs.Tensors.Where(t => t.Type == Q8_0).ToList(), Source, expectedTensors: 15);
    }

    [Fact]
    public void Q8_0_is_early_llama_cpps_quantization_byte_for_byte()
    {
        var theirs = ReadGguf(Model("gguf", "stories260K-q8_0-v2.gguf"));
        var f32 = ReadGguf(Model("gguf", "stories260K-f32.gguf"));
        var quantized = theirs.Tensors.Where(t => t.Type == Q8_0).ToList();
        Assert.Contains(quantized, t => t.Dims[0] % 32 != 0); // ffn_down: blocks run across rows
        AssertAllBlocksEqual(quantized, t => f32[t.Name].Floats(), expectedTensors: 37);
    }
}
