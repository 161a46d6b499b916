using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Engine;

[Collection("Engine"), Trait("Category", "Engine")]
public sealed class ResumeTests
{
    private static TrainOptions Opts(string dir)
    {
        var o = EngineWorkspace.Options(dir, maxSteps: 6);
        o.BatchSize = 2; o.GradAccumulation = 2; o.LoraDropout = 0.2; o.ValSteps = 3; o.SaveSteps = 0; o.Plots = false;
        return o;
    }

    [Fact]
    public void K_steps_then_resume_equals_one_go_bit_for_bit()
    {
        using var tmp = new TempDir();
        TrainingOutcome full;
        using (var s = EngineWorkspace.Open(Opts(tmp.File("full")))) full = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)).Run();

        TrainingOutcome first, second;
        using (var s = EngineWorkspace.Open(Opts(tmp.File("split")))) first = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { StopAfterSteps = 4 }.Run();
        Assert.Equal(4, first.NextStep);
        using (var s = EngineWorkspace.Open(Opts(tmp.File("split")))) second = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { ResumeFrom = "latest" }.Run();
        Assert.Equal(2, second.StepsRun);
        Assert.Equal(6, second.NextStep);

        Assert.Equal(full.ConsumedSamples, second.ConsumedSamples);
        AssertSameTensors(Path.Combine(full.AdapterDir, LoraAdapter.WeightsFile), Path.Combine(second.AdapterDir, LoraAdapter.WeightsFile));
        AssertSameTensors(Path.Combine(full.LastCheckpoint!, TrainerCheckpoint.OptimizerFile), Path.Combine(second.LastCheckpoint!, TrainerCheckpoint.OptimizerFile));
        // and training moved the adapter at all (B starts at zero)
        using var f = new SafetensorsFile(Path.Combine(full.AdapterDir, LoraAdapter.WeightsFile));
        Assert.Contains(f.Names.Where(n => n.Contains("lora_B")), n => f.Load(n).abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Resume_refuses_a_changed_plan()
    {
        using var tmp = new TempDir();
        using (var s = EngineWorkspace.Open(Opts(tmp.File("run")))) new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { StopAfterSteps = 2 }.Run();
        var o = Opts(tmp.File("run"));
        o.Seed = 99;
        using var s2 = EngineWorkspace.Open(o);
        var e = Assert.Throws<TrainConfigException>(() => new TrainingRun(s2, new LineProgress(TextWriter.Null, 1)) { ResumeFrom = "latest" }.Run());
        Assert.Equal("--resume", e.Key);
    }

    private static void AssertSameTensors(string a, string b)
    {
        using var fa = new SafetensorsFile(a);
        using var fb = new SafetensorsFile(b);
        Assert.Equal(fa.Names.OrderBy(x => x, StringComparer.Ordinal), fb.Names.OrderBy(x => x, StringComparer.Ordinal));
        foreach (var n in fa.Names)
        {
            using var ta = fa.Load(n); using var tb = fb.Load(n);
            Assert.True(EngineWorkspace.Same(ta, tb), $"{Path.GetFileName(a)}: '{n}' differs between the one-go run and the resumed run");
        }
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
    }
}
