using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Lora;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Engine;

[Collection("Engine"), Trait("Category", "Engine")]
public sealed class TrainingBehaviourTests
{
    [Fact]
    public void Overfits_a_few_samples()
    {
        using var tmp = new TempDir();
        var o = EngineWorkspace.Options(tmp.File("run"), maxSteps: 40);
        o.ValidationFraction = 0; o.BatchSize = 4; o.Lr = 1e-2; o.WarmupSteps = 2; o.Schedule = ScheduleKind.Constant;
        o.ValSteps = 0; o.Plots = false; o.TensorBoard = false;
        using var s = EngineWorkspace.Open(o);
        // a fixed set of 4 samples every step: pure memorisation
        var ids = s.TrainIds.Take(4).ToArray();
        var losses = new List<double>();
        for (int step = 0; step < 40; step++)
        {
            using var scope = NewDisposeScope();
            var g = s.Engine.ComputeGradients(new[] { s.Store.Collate(ids) });
            Assert.True(s.Engine.ApplyGradients(g, step).Applied);
            losses.Add(g.Loss);
        }
        Assert.True(losses[^1] < 0.5 * losses[0], $"loss {losses[0]:0.000} → {losses[^1]:0.000}: did not overfit");
    }

    [Fact]
    public void Watchdog_skips_non_finite_steps_and_stops_after_patience()
    {
        using var tmp = new TempDir();
        var o = EngineWorkspace.Options(tmp.File("run"), maxSteps: 10);
        o.NanPatience = 3; o.LoraDropout = 0;
        using var s = EngineWorkspace.Open(o);
        var e = s.Engine;
        var ids = s.TrainIds.Take(2).ToArray();
        var (name, b) = s.Adapter.NamedParameters().First(p => p.Key.Contains("lora_B"));
        var (_, a) = s.Adapter.NamedParameters().First(p => p.Key.Contains("lora_A"));
        GradientResult Grads() { using var scope = NewDisposeScope(); return e.ComputeGradients(new[] { s.Store.Collate(ids) }); }

        // a good step first
        Assert.True(e.ApplyGradients(Grads(), 0).Applied);
        var before = s.Adapter.NamedParameters().ToDictionary(p => p.Key, p => p.Param.detach().clone());
        long stepsBefore = e.Optimizer.StepOf(name);
        using (no_grad()) b.narrow(0, 0, 1).narrow(1, 0, 1).fill_(float.NaN);
        var poisoned = b.detach().clone();

        var r1 = e.ApplyGradients(Grads(), 1);
        Assert.False(r1.Applied);
        Assert.Equal(1, r1.NonFiniteInARow);
        Assert.NotNull(r1.SkipReason);
        var r2 = e.ApplyGradients(Grads(), 2);
        Assert.False(r2.Applied);
        // skipped steps leave parameters and moments alone
        Assert.Equal(stepsBefore, e.Optimizer.StepOf(name));
        foreach (var (k, p) in s.Adapter.NamedParameters())
            Assert.True(k == name ? EngineWorkspace.Same(p.detach(), poisoned) : EngineWorkspace.Same(p.detach(), before[k]), $"{k} changed on a skipped step");
        Assert.Throws<TrainingDivergedException>(() => e.ApplyGradients(Grads(), 3));

        // a finite step resets the count
        using (no_grad()) b.copy_(before[name]);
        e.NonFiniteInARow = 2;
        Assert.True(e.ApplyGradients(Grads(), 4).Applied);
        Assert.Equal(0, e.NonFiniteInARow);
        Assert.NotNull(a.grad);
    }

    [Fact]
    public void Token_weighted_and_mean_normalisation_agree_for_one_micro_batch_and_differ_for_uneven_ones()
    {
        using var tmp = new TempDir();
        var o = EngineWorkspace.Options(tmp.File("run"), maxSteps: 4);
        o.LoraDropout = 0;
        using var s = EngineWorkspace.Open(o);
        var ids = s.TrainIds.ToArray();
        var batches = new[] { ids[..1], ids[1..4] };
        Dictionary<string, Tensor> GradsFor(LossNormalisation n, long[][] mbs)
        {
            var e = new TrainingEngine(s.Model, s.Adapter, s.Engine.Optimizer, s.Engine.Schedule, 1e-3, null, n, s.Engine.LossOptions, 5);
            using var scope = NewDisposeScope();
            var g = e.ComputeGradients(mbs.Select(m => s.Store.Collate(m)).ToList());
            using (no_grad()) foreach (var (_, p) in s.Adapter.NamedParameters()) p.grad!.div_(g.Weight);
            return s.Adapter.NamedParameters().ToDictionary(p => p.Key, p => p.Param.grad!.detach().clone().DetachFromDisposeScope());
        }
        var m1 = GradsFor(LossNormalisation.Mean, new[] { ids[..3] });
        var t1 = GradsFor(LossNormalisation.Tokens, new[] { ids[..3] });
        foreach (var k in m1.Keys) Assert.True(m1[k].allclose(t1[k], 1e-5, 1e-7), k);
        var m2 = GradsFor(LossNormalisation.Mean, batches);
        var t2 = GradsFor(LossNormalisation.Tokens, batches);
        Assert.Contains(m2.Keys, k => !m2[k].allclose(t2[k], 1e-4, 1e-6));
    }
}
