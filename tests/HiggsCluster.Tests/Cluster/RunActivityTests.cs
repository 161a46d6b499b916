using System.Collections.Immutable;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;
using static HiggsCluster.Coordinator.Run.ViewEvents;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The coordinator view's activity (idle | step | hand-over | restore) is one value, and the take-over wait (settled |
/// awaiting a holder | resuming) another: each event moves them as a whole, so no two activities can overlap.
/// </summary>
public sealed class RunActivityTests
{
    private static readonly RunSpec Spec = ToyCluster.Spec("a", ranks: 2, micro: 1, accum: 1, shards: 1);
    private static StartStepEffect Step(long g) => new(1, 0, g, new[] { new[] { new[] { 0L } } }, false, null, 0);
    private static readonly HandOverEffect HandOver = new(1, 3, "A", new[] { "B" });
    private static readonly RestoreEffect Restore = new(1, 2, "ck/checkpoint-2", new[] { "A", "B" }, RollBack: true);

    private static RunView Fold(RunView v, params ViewEvent[] events) => events.Aggregate(v, (s, e) => s.Evolve(e));

    [Fact]
    public void Each_activity_replaces_the_last_and_its_end_leaves_the_view_idle()
    {
        var v = RunView.Start(Spec);
        Assert.IsType<RunActivity.Idle>(v.Doing);

        v = Fold(v, new HandOverAsked(HandOver, "handing over"));
        Assert.Equal(HandOver, v.HandOver);
        Assert.Null(v.InFlight);

        // every member installed it: the step that follows ends the hand-over (no record of it lingers during the step)
        v = Fold(v, new StepStarted(Step(3), (1, 3), "training step 4"));
        Assert.Equal(3, v.InFlight!.GlobalStep);
        Assert.Null(v.HandOver);

        v = Fold(v, new Reported(0, new[] { 1.0 }, 5UL), new Reported(1, new[] { 1.0 }, 5UL));
        Assert.Equal(new[] { 0, 1 }, v.Reports.Keys);
        v = Fold(v, new CommitApplied());
        Assert.IsType<RunActivity.Idle>(v.Doing);
        Assert.Empty(v.Reports);

        v = Fold(v, new RollBackStarted(Restore, "rolled back"));
        Assert.Equal(Restore, v.Restoring);
        // waiting for the workers to load it is not an end of the restore
        v = Fold(v, new Idle("waiting for the workers to load the checkpoint"));
        Assert.Equal(Restore, v.Restoring);
        v = Fold(v, new Restored(null));
        Assert.IsType<RunActivity.Idle>(v.Doing);
    }

    [Fact]
    public void Ending_one_activity_leaves_another_alone()
    {
        var handingOver = Fold(RunView.Start(Spec), new HandOverAsked(HandOver, "handing over"));
        // "no step runs" while a hand-over is awaited keeps the hand-over
        Assert.Equal(HandOver, Fold(handingOver, new Idle("waiting for B to install")).HandOver);
        Assert.Equal(HandOver, Fold(handingOver, new StepAbandoned("group changed")).HandOver);
        Assert.Equal(HandOver, Fold(handingOver, new Restored(null)).HandOver);
        // a member list of the same generation keeps it, one without it ends it
        var members = ImmutableArray.Create("A", "B");
        Assert.Equal(HandOver, Fold(handingOver, new MembersChanged(members, ImmutableHashSet.Create("A"), HandOver)).HandOver);
        Assert.IsType<RunActivity.Idle>(Fold(handingOver, new MembersChanged(members, ImmutableHashSet.Create("A"), null)).Doing);

        var stepping = Fold(RunView.Start(Spec), new StepStarted(Step(0), (1, 0), "training step 1"));
        Assert.NotNull(Fold(stepping, new HandOverOver("installed")).InFlight);
        Assert.NotNull(Fold(stepping, new MembersChanged(members, ImmutableHashSet.Create("A", "B"), null)).InFlight);
        Assert.Throws<InvalidOperationException>(() => Fold(RunView.Start(Spec), new Reported(0, new[] { 1.0 }, 5UL)));
    }

    [Fact]
    public void A_refusal_of_a_hand_over_that_the_next_step_ended_is_stale()
    {
        var s = RunState.Submit(Spec);
        s = s with { View = Fold(s.View, new GroupChanged(1, 2), new MembersChanged(ImmutableArray.Create("A", "B"), ImmutableHashSet.Create("A", "B"), null),
            new HandOverAsked(HandOver with { GlobalStep = 0 }, "handing over"), new StepStarted(Step(0), (1, 0), "training step 1")) };
        Assert.Empty(RunMachine.Decide(s, new HandOverRefused("A", 0, "not held")));
        Assert.Empty(RunMachine.Decide(s, new HandOverOverdue(1, 0)));
    }

    [Fact]
    public void A_take_over_waits_for_its_group_and_a_holder_and_only_the_holder_wait_outlives_the_resume()
    {
        var w = new HolderWait.Resuming(2, HolderKnown: false);
        Assert.True(w.AwaitsHolder && w.IsResuming);
        Assert.Equal(2, w.ResumeGroup);
        Assert.Equal(0, w.GroupWaitOver().ResumeGroup);
        Assert.True(w.GroupWaitOver().IsResuming);
        // a holder registered: still resuming until the group is there
        Assert.Equal(new HolderWait.Resuming(2, HolderKnown: true), w.Awaiting(false));
        Assert.IsType<HolderWait.Settled>(w.Awaiting(false).Resumed());
        // resumed before any holder came (every member holds the start state): the holder wait goes on alone
        Assert.IsType<HolderWait.AwaitingHolder>(w.Resumed());
        Assert.IsType<HolderWait.Settled>(new HolderWait.AwaitingHolder().Awaiting(false));
        Assert.IsType<HolderWait.AwaitingHolder>(HolderWait.None.Awaiting(true));
        Assert.IsType<HolderWait.Settled>(HolderWait.None.GroupWaitOver());
    }
}
