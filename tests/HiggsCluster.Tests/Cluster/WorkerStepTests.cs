using HiggsCluster.GpuWorker.Steps;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class WorkerStepTests
{
    private static (WorkerStepState, List<WorkerEffect>) Apply(WorkerStepState s, params WorkerCommand[] cmds)
    {
        var all = new List<WorkerEffect>();
        foreach (var c in cmds) { var (s2, fx) = s.Handle(c); s = s2; all.AddRange(fx); }
        return (s, all);
    }

    [Fact]
    public void Micro_steps_run_in_order_one_at_a_time_then_all_reduce_optimizer_report()
    {
        var (s, fx) = Apply(WorkerStepState.Idle, new BeginStep(1, 10, 3), new BatchArrived(10, 2), new BatchArrived(10, 1));
        Assert.Empty(fx); // micro 0 missing
        (s, fx) = Apply(s, new BatchArrived(10, 0));
        Assert.Equal(new WorkerEffect[] { new RunMicroStep(10, 0) }, fx);
        (s, fx) = Apply(s, new MicroStepFinished(10, 0, 2.0));
        Assert.Equal(new WorkerEffect[] { new AckBatch(10, 0), new RunMicroStep(10, 1) }, fx);
        (s, fx) = Apply(s, new MicroStepFinished(10, 1, 4.0), new MicroStepFinished(10, 2, 6.0));
        Assert.Equal(new WorkerEffect[] { new AckBatch(10, 1), new RunMicroStep(10, 2), new AckBatch(10, 2), new AllReduceGradients(10) }, fx);
        (s, fx) = Apply(s, new AllReduceFinished(10));
        Assert.Equal(new WorkerEffect[] { new ReportStep(1, 10, 4.0) }, fx);
        Assert.IsType<WorkerProtocolError>(Assert.Single(s.Handle(new OptimizerStepped(10)).Effects)); // not before the commit
        (s, fx) = Apply(s, new Committed(10), new OptimizerStepped(10));
        Assert.Equal(new WorkerEffect[] { new StepOptimizer(10) }, fx);
        Assert.Equal(WorkerPhase.Idle, s.Phase);
    }

    [Fact]
    public void A_rank_without_samples_still_joins_the_all_reduce()
    {
        var (_, fx) = Apply(WorkerStepState.Idle, new BeginStep(1, 4, 0));
        Assert.Equal(new WorkerEffect[] { new AllReduceGradients(4) }, fx);
    }

    [Fact]
    public void Group_change_discards_gradients_and_drops_waiting_batches()
    {
        var (s, _) = Apply(WorkerStepState.Idle, new BeginStep(1, 3, 3), new BatchArrived(3, 0), new BatchArrived(3, 2));
        var (s2, fx) = Apply(s, new GroupChanged(2));
        Assert.Contains(new DiscardGradients(3), fx);
        Assert.Contains(new DropBatch(3, 2), fx);
        Assert.Equal(WorkerPhase.Idle, s2.Phase);
        (_, fx) = Apply(s2, new BeginStep(1, 3, 3)); // a start from the old group is ignored
        Assert.Empty(fx);
        (_, fx) = Apply(s2, new BatchArrived(3, 1));
        Assert.Empty(fx); // held until its step starts
    }

    [Fact]
    public void Batches_ahead_of_their_start_are_held_and_past_ones_released()
    {
        var (s, fx) = Apply(WorkerStepState.Idle, new BatchArrived(5, 0), new BatchArrived(4, 0));
        Assert.Empty(fx);
        (s, fx) = Apply(s, new BeginStep(1, 5, 1));
        Assert.Equal(new WorkerEffect[] { new DropBatch(4, 0), new RunMicroStep(5, 0) }, fx);
        (s, fx) = Apply(s, new BatchArrived(6, 0), new MicroStepFinished(5, 0, 1), new AllReduceFinished(5), new Committed(5), new OptimizerStepped(5));
        Assert.Contains(new ReportStep(1, 5, 1), fx);
        (_, fx) = Apply(s, new BatchArrived(5, 0), new BeginStep(1, 6, 1));
        Assert.Equal(new WorkerEffect[] { new DropBatch(5, 0), new RunMicroStep(6, 0) }, fx);
    }

    [Fact]
    public void A_group_change_while_awaiting_the_commit_discards_the_reduced_gradients_without_stepping()
    {
        var (s, _) = Apply(WorkerStepState.Idle, new BeginStep(1, 2, 0), new AllReduceFinished(2));
        Assert.Equal(WorkerPhase.AwaitingCommit, s.Phase);
        var (s2, fx) = Apply(s, new GroupChanged(2));
        Assert.Equal(new WorkerEffect[] { new DiscardGradients(2) }, fx);
        Assert.DoesNotContain(fx, e => e is StepOptimizer);
        Assert.Empty(s2.Handle(new Committed(2)).Effects); // a late commit for a step this group never ran
    }

    [Fact]
    public void Out_of_protocol_messages_are_errors()
    {
        var (s, _) = Apply(WorkerStepState.Idle, new BeginStep(1, 3, 2), new BatchArrived(3, 0));
        Assert.IsType<WorkerProtocolError>(Assert.Single(s.Handle(new BeginStep(1, 4, 2)).Effects));
        Assert.IsType<WorkerProtocolError>(Assert.Single(s.Handle(new BatchArrived(3, 5)).Effects));
        Assert.IsType<WorkerProtocolError>(Assert.Single(s.Handle(new AllReduceFinished(3)).Effects));
    }
}
