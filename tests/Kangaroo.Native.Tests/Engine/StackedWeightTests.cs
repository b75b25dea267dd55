using Kangaroo.Native.Kernels.Cpu;
using N = Kangaroo.Native.Loader.ModelCheckpoint.Names;

namespace Kangaroo.Native.Tests.Engine;

/// <summary>LlamaModel stacks q|k|v and gate|up into one product each. When the parts have different
/// element types each keeps its own (one matmul per run of one type, each filling its columns): a
/// checkpoint whose layer-0 k_proj and up_proj are f16 among f32 tensors must run exactly like an
/// all-f32 checkpoint holding those f16 values widened, since every tile forms a dot product the same
/// way whatever the weight's type.</summary>
public sealed class StackedWeightTests
{
    private static readonly string[] Halved = [N.Layer(0, N.Key), N.Layer(0, N.Up)];

    [Fact]
    public void MixedElementTypesRunAsTheirExactF32Widening()
    {
        using var f32 = new TempDirectory();
        using var f16 = new TempDirectory();
        using var source = ModelCheckpoint.Open(SharedData.EmbeddedModel);
        CheckpointConverter.Convert(source, f32.Path, ElementType.F32);
        CheckpointConverter.Convert(source, f16.Path, ElementType.F16);
        using var mixed = new TempDirectory();
        using var widened = new TempDirectory();
        using (var full = ModelCheckpoint.Open(f32.Path))
        using (var half = ModelCheckpoint.Open(f16.Path))
        {
            foreach (var target in new[] { mixed, widened })
            {
                File.Copy(f32.File("config.json"), target.File("config.json"));
                File.Copy(f32.File("tokenizer.model"), target.File("tokenizer.model"));
            }
            var tensors = N.Expected(source.Config).Where(t => full.Contains(t.Name)).ToList();
            SafeTensorOutput Output(ModelCheckpoint from, string name, int[] shape)
            {
                var tensor = from.Read(name, shape);
                return new SafeTensorOutput(name, tensor.Type, shape, tensor.Bytes.ToArray());
            }
            SafeTensorsWriter.Write(mixed.File("model.safetensors"),
                tensors.Select(t => Output(Halved.Contains(t.Name) ? half : full, t.Name, t.Shape)).ToList());
            SafeTensorsWriter.Write(widened.File("model.safetensors"), tensors.Select(t => Halved.Contains(t.Name)
                ? new SafeTensorOutput(t.Name, ElementType.F32, t.Shape, CheckpointConverter.Encode(TensorData.FromFloats(half.Read(t.Name, t.Shape).ToFloats(), t.Shape), ElementType.F32))
                : Output(full, t.Name, t.Shape)).ToList());
        }
        using (var check = ModelCheckpoint.Open(mixed.Path))
            Assert.Equal(ElementType.F16, check.Read(Halved[0], source.Config.KvDim, source.Config.Dim).Type);
        Assert.Equal(Logits(widened.Path), Logits(mixed.Path));
    }

    private static float[] Logits(string path)
    {
        using var checkpoint = ModelCheckpoint.Open(path);
        using var model = new LlamaModel(checkpoint, new CpuDevice());
        int[] tokens = [.. GoldenCase.All[0].PromptIds];
        using var residual = model.AllocateResidual(tokens.Length);
        using var logits = model.AllocateLogits(tokens.Length);
        model.Embed(tokens, residual);
        model.RunBlocks(0, model.Layers, residual, ModelPasses.OneSequence(0, tokens.Length));
        model.Logits(residual, tokens.Length, logits);
        var result = new float[tokens.Length * model.Config.VocabSize];
        model.Device.Download(logits, result);
        return result;
    }
}
