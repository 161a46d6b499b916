using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Engine;

/// <summary>A diverged (NaN/Inf) adapter or optimizer state is refused on resume and never reported as a good validation.</summary>
[Collection("Engine"), Trait("Category", "Engine"), Trait("Category", "Adversarial")]
public sealed class NonFiniteCheckpointTests
{
    private static TrainOptions Opts(string dir)
    {
        var o = EngineWorkspace.Options(dir, maxSteps: 4);
        o.BatchSize = 2; o.GradAccumulation = 1; o.ValSteps = 0; o.SaveSteps = 0; o.Plots = false;
        return o;
    }

    /// <summary>A short run that stops with a checkpoint at step 2; returns the checkpoint's folder.</summary>
    private static string CheckpointAfterTwoSteps(string outDir)
    {
        using var s = EngineWorkspace.Open(Opts(outDir));
        var r = new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { StopAfterSteps = 2 }.Run();
        return r.LastCheckpoint!;
    }

    /// <summary>Rewrites one tensor of a safetensors file with NaN, with the project's writer (metadata kept).</summary>
    private static string PoisonFirst(string path, Func<string, bool> pick)
    {
        Dictionary<string, Tensor> all;
        IReadOnlyDictionary<string, string> meta;
        string victim;
        using (var f = new SafetensorsFile(path))
        {
            all = f.Names.ToDictionary(n => n, n => f.Load(n));
            meta = f.Metadata;
            victim = f.Names.Where(pick).OrderBy(n => n, StringComparer.Ordinal).First();
        }
        all[victim] = full_like(all[victim], double.NaN);
        File.Delete(path);
        SafetensorsWriter.Write(path, all, meta);
        return victim;
    }

    private static void AssertResumeRefuses(string outDir, string ckpt, string tensor)
    {
        using var s = EngineWorkspace.Open(Opts(outDir));
        var e = Assert.Throws<InvalidDataException>(() => new TrainingRun(s, new LineProgress(TextWriter.Null, 1)) { ResumeFrom = "latest" }.Run());
        Assert.Contains(tensor, e.Message);
        Assert.Contains("NaN or Inf", e.Message);
        Assert.Contains(ckpt, e.Message);
        // refused before loading: the session's adapter was left untouched (B still all zero at init)
        using var _ = no_grad();
        Assert.All(s.Adapter.NamedParameters(), p => Assert.True(isfinite(p.Param).all().item<bool>(), p.Key));
    }

    [Fact]
    public void Resume_refuses_a_checkpoint_whose_adapter_holds_NaN_naming_the_tensor()
    {
        using var tmp = new TempDir();
        var ckpt = CheckpointAfterTwoSteps(tmp.File("run"));
        var victim = PoisonFirst(Path.Combine(ckpt, LoraAdapter.WeightsFile), n => n.Contains("lora_B"));
        AssertResumeRefuses(tmp.File("run"), ckpt, victim);
    }

    [Fact]
    public void Resume_refuses_a_checkpoint_whose_AdamW_moment_holds_NaN_naming_the_tensor()
    {
        using var tmp = new TempDir();
        var ckpt = CheckpointAfterTwoSteps(tmp.File("run"));
        var victim = PoisonFirst(Path.Combine(ckpt, TrainerCheckpoint.OptimizerFile), n => n.StartsWith("exp_avg_sq.", StringComparison.Ordinal));
        AssertResumeRefuses(tmp.File("run"), ckpt, victim);
    }

    [Theory]
    [InlineData(true)]  // the cluster's actors (the default of `higgs train`): refused before any actor starts
    [InlineData(false)] // --engine
    public void Higgs_train_resume_from_a_NaN_checkpoint_is_a_one_line_usage_error(bool cluster)
    {
        using var tmp = new TempDir();
        var ckpt = CheckpointAfterTwoSteps(tmp.File("run"));
        var victim = PoisonFirst(Path.Combine(ckpt, LoraAdapter.WeightsFile), n => n.Contains("lora_A"));
        // CliUsageException is what Program turns into "higgs: <message>" and exit 2, with no stack trace
        var e = Assert.Throws<HiggsCluster.Cli.Commands.CliUsageException>(() => HiggsCluster.Cli.Commands.TrainCommand.Execute(
            Opts(tmp.File("run")), "latest", dryRunOnly: false, TextWriter.Null, TextWriter.Null, dryRunFirst: false, clusterWorkers: cluster ? 1 : null));
        Assert.StartsWith("--resume: ", e.Message);
        Assert.Contains(victim + " holds NaN or Inf values", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Evaluator_reports_NaN_for_a_NaN_adapter_and_it_is_never_best()
    {
        using var tmp = new TempDir();
        using var s = EngineWorkspace.Open(Opts(tmp.File("run")));
        using (no_grad())
            foreach (var (_, p) in s.Adapter.NamedParameters().Where(p => p.Key.Contains("lora_B"))) p.fill_(double.NaN);
        Assert.NotEmpty(s.ValidationIds);
        var v = Evaluator.Run(s.Model, s.Store, s.ValidationIds, 2, s.Engine.LossOptions, step: 0);
        Assert.True(double.IsNaN(v.Loss), $"validation loss of a NaN adapter was {v.Loss}");
        Assert.False(Evaluator.IsBest(v.Loss, null));

        // and the log keeps it as "no value", not as 0, and not best
        var log = tmp.File("metrics.jsonl");
        using (var m = new MetricsLog(log)) m.Validation(v, Evaluator.IsBest(v.Loss, null));
        var line = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllLines(log).Single())!;
        Assert.Null(line["loss"]);
        Assert.False(line["best"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData(double.NaN, null, false)]
    [InlineData(double.PositiveInfinity, null, false)]
    [InlineData(double.NaN, 1.0, false)]
    [InlineData(2.0, null, true)]
    [InlineData(0.5, 1.0, true)]
    [InlineData(1.5, 1.0, false)]
    [InlineData(1.5, double.NaN, true)] // a NaN best recorded before the rule is beaten by any finite loss
    public void Best_requires_a_finite_loss(double loss, double? bestSoFar, bool expected) =>
        Assert.Equal(expected, Evaluator.IsBest(loss, bestSoFar));
}
