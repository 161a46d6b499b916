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
    public void A_group_change_while_awaiting_the_commit_keeps_the_reduced_gradients_until_the_step_is_started_again()
    {
        var (s, _) = Apply(WorkerStepState.Idle, new BeginStep(1, 2, 0), new AllReduceFinished(2));
        Assert.Equal(WorkerPhase.AwaitingCommit, s.Phase);
        var (s2, fx) = Apply(s, new GroupChanged(2));
        Assert.Empty(fx);
        (_, fx) = Apply(s2, new BeginStep(2, 2, 0)); // the new group runs the uncommitted step again
        Assert.Equal(new WorkerEffect[] { new DiscardGradients(2), new AllReduceGradients(2) }, fx);
        Assert.DoesNotContain(fx, e => e is StepOptimizer);
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

/// <summary>A coordinator fail-over while ranks wait for a commit: every rank ends at the same committed step.</summary>
[Trait("Category", "Cluster")]
public class WorkerCommitAcrossFailoverTests
{
    private static (WorkerStepState, List<WorkerEffect>) Apply(WorkerStepState s, params WorkerCommand[] cmds)
    {
        var all = new List<WorkerEffect>();
        foreach (var c in cmds) { var (s2, fx) = s.Handle(c); s = s2; all.AddRange(fx); }
        return (s, all);
    }

    /// <summary>A rank that reduced step <paramref name="step"/> of generation 1 and reported it.</summary>
    private static WorkerStepState Reported(long step) =>
        Apply(WorkerStepState.Idle, new BeginStep(1, step, 1), new BatchArrived(step, 0), new MicroStepFinished(step, 0, 1.0), new AllReduceFinished(step)).Item1;

    [Fact]
    public void A_rank_waiting_for_a_commit_keeps_its_gradients_across_a_group_change_and_applies_the_resent_commit()
    {
        var (s, fx) = Apply(Reported(4), new GroupChanged(7));
        Assert.DoesNotContain(fx, e => e is DiscardGradients);
        Assert.Equal(WorkerPhase.AwaitingCommit, s.Phase);
        (s, fx) = Apply(s, new Committed(4)); // the commit re-sent by the new coordinator
        Assert.Equal(new WorkerEffect[] { new StepOptimizer(4) }, fx);
        (s, fx) = Apply(s, new OptimizerStepped(4), new BeginStep(7, 5, 1));
        Assert.Empty(fx);
        Assert.Equal((WorkerPhase.MicroSteps, 5L, 7L), (s.Phase, s.GlobalStep, s.Generation));
    }

    [Fact]
    public void A_rank_that_already_applied_the_commit_ignores_the_resent_one()
    {
        var (s, _) = Apply(Reported(4), new Committed(4), new OptimizerStepped(4), new GroupChanged(7));
        var (s2, fx) = Apply(s, new Committed(4));
        Assert.Empty(fx);
        Assert.Equal(WorkerPhase.Idle, s2.Phase);
    }

    [Fact]
    public void Ranks_split_by_a_lost_commit_end_at_the_same_step()
    {
        // rank A heard the commit of step 4 before the coordinator died, rank B did not
        var (a, fxA) = Apply(Reported(4), new Committed(4), new OptimizerStepped(4));
        var b = Reported(4);
        // the new coordinator: new group, the last commit again, then step 5
        var cmds = new WorkerCommand[] { new GroupChanged(8), new Committed(4), new BeginStep(8, 5, 1) };
        (a, var fa) = Apply(a, cmds);
        (b, var fb) = Apply(b, cmds);
        fxA.AddRange(fa);
        Assert.Single(fxA.OfType<StepOptimizer>());               // A stepped once
        Assert.Single(fb.OfType<StepOptimizer>(), o => o.GlobalStep == 4); // B caught up
        (b, _) = Apply(b, new OptimizerStepped(4));
        Assert.Equal((a.Phase, a.GlobalStep, a.Generation), (WorkerPhase.MicroSteps, 5L, 8L));
        // B's optimizer stepped before the start arrived: it starts step 5 once OptimizerStepped came back
        Assert.Equal(WorkerPhase.Idle, b.Phase);
        (b, _) = Apply(b, new BeginStep(8, 5, 1));
        Assert.Equal((b.Phase, b.GlobalStep), (WorkerPhase.MicroSteps, 5L));
    }

    [Fact]
    public void A_batch_of_the_step_run_again_that_overtakes_its_start_is_held_not_released()
    {
        // the new coordinator plans step 4 again: the loader's batch reaches this rank before the start does
        var (s, fx) = Apply(Reported(4), new GroupChanged(7), new BatchArrived(4, 0));
        Assert.Empty(fx);
        (s, fx) = Apply(s, new BeginStep(7, 4, 1));
        Assert.Equal(new WorkerEffect[] { new DiscardGradients(4), new RunMicroStep(4, 0) }, fx);
        Assert.Equal((WorkerPhase.MicroSteps, 4L, 7L), (s.Phase, s.GlobalStep, s.Generation));

        // in the group that reduced it, a batch of the step again (a loader re-sending it) is past and released
        var (same, fx2) = Apply(Reported(4), new BatchArrived(4, 0));
        Assert.Equal(new WorkerEffect[] { new DropBatch(4, 0) }, fx2);
        Assert.Empty(same.Early);
    }

    [Fact]
    public void An_uncommitted_step_started_again_by_the_new_group_discards_the_kept_gradients_and_runs_again()
    {
        var (s, fx) = Apply(Reported(4), new GroupChanged(7), new Committed(3), new BeginStep(7, 4, 1));
        Assert.Contains(new DiscardGradients(4), fx);
        Assert.DoesNotContain(fx, e => e is StepOptimizer);
        Assert.Equal((WorkerPhase.MicroSteps, 4L, 7L), (s.Phase, s.GlobalStep, s.Generation));
        (s, fx) = Apply(s, new BatchArrived(4, 0));
        Assert.Equal(new WorkerEffect[] { new RunMicroStep(4, 0) }, fx);
    }
}
