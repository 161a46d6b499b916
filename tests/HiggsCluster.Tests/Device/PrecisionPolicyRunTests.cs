using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Engine;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Device;

/// <summary>
/// The GPU precision policy (bf16 base; LoRA, its gradients, AdamW moments and the loss in fp32) exercised on the CPU
/// through <c>model.dtype: bf16</c>, by the same code path a CUDA run takes.
/// </summary>
[Collection("Engine"), Trait("Category", "Device")]
public sealed class PrecisionPolicyRunTests
{
    private static TrainOptions Options(TempDir tmp, string name, string dtype)
    {
        var o = EngineWorkspace.Options(tmp.File(name), maxSteps: 30);
        o.DType = dtype;
        o.ValidationFraction = 0; o.BatchSize = 4; o.Lr = 1e-2; o.WarmupSteps = 2; o.Schedule = ScheduleKind.Constant;
        o.LoraDropout = 0; o.ValSteps = 0; o.Plots = false; o.TensorBoard = false;
        return o;
    }

    [Fact]
    public void A_bf16_base_starts_within_2e_2_of_fp32_and_trains()
    {
        using var tmp = new TempDir();
        double fp32First;
        using (var f = EngineWorkspace.Open(Options(tmp, "fp32", "fp32")))
        using (var scope = NewDisposeScope())
        {
            Assert.Equal(ScalarType.Float32, f.Model.DType);
            fp32First = f.Engine.ComputeGradients(new[] { f.Store.Collate(f.TrainIds.Take(4).ToArray()) }).Loss;
        }

        using var s = EngineWorkspace.Open(Options(tmp, "bf16", "bf16"));
        Assert.Equal(ScalarType.BFloat16, s.Model.DType);
        var ids = s.TrainIds.Take(4).ToArray();
        var losses = new List<double>();
        for (int step = 0; step < 30; step++)
        {
            using var scope = NewDisposeScope();
            var g = s.Engine.ComputeGradients(new[] { s.Store.Collate(ids) });
            Assert.True(s.Engine.ApplyGradients(g, step).Applied, $"step {step} skipped");
            losses.Add(g.Loss);
        }
        double rel = Math.Abs(losses[0] - fp32First) / Math.Abs(fp32First);
        Assert.True(rel < 2e-2, $"first-step loss bf16 {losses[0]:0.00000} vs fp32 {fp32First:0.00000}: relative {rel:0.0000}");
        Assert.True(losses[^1] < 0.7 * losses[0], $"bf16 loss {losses[0]:0.000} → {losses[^1]:0.000}: did not fall");
    }

    [Fact]
    public void A_bf16_run_keeps_lora_gradients_and_moments_in_fp32_and_holds_no_fp32_copy_of_the_base()
    {
        using var tmp = new TempDir();
        using var s = EngineWorkspace.Open(Options(tmp, "bf16", "bf16"));
        using (var scope = NewDisposeScope())
        {
            var g = s.Engine.ComputeGradients(new[] { s.Store.Collate(s.TrainIds.Take(2).ToArray()) });
            Assert.All(s.Adapter.Parameters(), p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
            Assert.True(s.Engine.ApplyGradients(g, 0).Applied);
        }
        Assert.All(s.Adapter.Parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        var moments = s.Engine.Optimizer.StateTensors();
        Assert.Equal(2 * s.Adapter.Parameters().Count(), moments.Count(kv => kv.Key.StartsWith("exp_avg", StringComparison.Ordinal)));
        Assert.All(moments, kv => Assert.Equal(ScalarType.Float32, kv.Value.dtype));

        // every tensor the model holds besides LoRA is the bf16 base: 2 bytes per base parameter, no fp32 shadow
        var lora = s.Adapter.Parameters().Select(p => p.Handle).ToHashSet();
        var all = s.Model.parameters().Where(p => !lora.Contains(p.Handle)).ToList();
        long baseCount = s.Model.BaseParameters().Sum(p => p.Param.numel());
        long bytes = all.Sum(p => p.numel() * p.ElementSize);
        Assert.Equal(baseCount, all.Sum(p => p.numel()));
        Assert.Equal(2 * baseCount, bytes);
    }

    [Fact]
    public void Gradient_checkpointing_and_dtype_keys_reach_the_model_on_the_worker_path_too()
    {
        using var tmp = new TempDir();
        var o = Options(tmp, "gc", "fp32");
        o.GradientCheckpointing = true;
        // a worker rebuilds its options from the submitted keys
        var again = TrainOptions.FromResolved(o.Resolved());
        Assert.True(again.GradientCheckpointing);
        Assert.Equal("fp32", again.DType);
        var model = RunModel.LoadBase(again);
        Assert.True(model.GradientCheckpointing);
        Assert.Equal(ScalarType.Float32, model.DType);
        model.Dispose();
        again.DType = "auto";
        using var auto = RunModel.LoadBase(again);
        Assert.Equal(PrecisionPolicy.For(CPU).BaseDType, auto.DType);
    }

    [Fact]
    public void Model_dtype_outside_auto_bf16_fp32_is_refused_naming_the_key()
    {
        var o = EngineWorkspace.Options(Path.Combine(Path.GetTempPath(), "unused"), 1);
        o.DType = "int8";
        var e = Assert.Throws<TrainConfigException>(() => o.Validate());
        Assert.Equal("model.dtype", e.Key);
        Assert.Contains("'int8' is not one of auto, bf16, fp32", e.Message);
        Assert.Throws<ArgumentException>(() => PrecisionPolicy.For("fp16", CPU));
        Assert.Equal(PrecisionPolicy.Gpu, PrecisionPolicy.For("auto", new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, 0)));
        Assert.Equal(PrecisionPolicy.Gpu, PrecisionPolicy.For("bf16", CPU));
        Assert.Equal(PrecisionPolicy.Cpu, PrecisionPolicy.For("fp32", new TorchSharp.torch.Device(TorchSharp.DeviceType.CUDA, 0)));
    }
}
