using HiggsCluster.Cli.Node;
using HiggsCluster.GpuWorker.Engine;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Training.Demo;
using HiggsCluster.Training.Engine;
using Xunit;

namespace HiggsCluster.Tests.Worker;

/// <summary>
/// A worker that became the lead after validations it did not run: the checkpoints it writes carry the coordinator's
/// early-stopping counts, not the ones its own late book would have (none, or a best of its first validation).
/// </summary>
[Collection("Engine"), Trait("Category", "Engine")]
public sealed class EngineStepRunnerCountsTests
{
    [Fact]
    public void A_checkpoint_records_the_early_stopping_counts_the_coordinator_sends()
    {
        using var tmp = new TempDir();
        var ws = DemoWorkspace.Create(tmp.File("ws"), entries: 8, seed: 3, hidden: 32, layers: 2);
        var o = ws.TrainOptions(tmp.File("out"), maxSteps: 4);
        o.BatchSize = 2; o.GradAccumulation = 1; o.Ranks = 1; o.TensorBoard = false; o.Plots = false; o.Progress = "off";
        var spec = RunSpecFactory.From(o, "late-lead");
        using var runner = new EngineStepRunner();
        runner.BeginRun(new RunPlanned(spec, Enumerable.Range(0, 8).Select(i => (long)i).ToArray(), Array.Empty<long>()));

        var own = TrainerCheckpoint.ReadState(runner.SaveCheckpoint("late-lead", 1, "step-1", final: false));
        Assert.Equal(((double?)null, 0), (own.BestValLoss, own.ValidationsWithoutImprovement)); // this book saw no validation

        var told = TrainerCheckpoint.ReadState(runner.SaveCheckpoint("late-lead", 2, "step-2", final: false, new EarlyStoppingCounts(1.25, 3)));
        Assert.Equal((2L, (double?)1.25, 3), (told.NextStep, told.BestValLoss, told.ValidationsWithoutImprovement));
        Assert.Null(told.BestStep); // validated on another worker, by a coordinator that did not say where

        var located = TrainerCheckpoint.ReadState(runner.SaveCheckpoint("late-lead", 3, "step-3", final: false, new EarlyStoppingCounts(1.25, 3, BestStep: 2)));
        Assert.Equal(2L, located.BestStep);
    }
}
