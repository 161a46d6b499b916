using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A loader that dies while a step is in flight loses the batches it was sent: the coordinator sends them again to the
/// shards' owners. Which batches were lost is decided by where each was sent, because a loader joining in between
/// takes over shards whose batches already went to the old owner (judged by the new owners, those were never sent
/// again and the step waited for ever: seen as a stalled loader-kill fault test).
/// </summary>
public sealed class BatchReplanTests
{
    private static readonly string[] Workers = { "A", "B" };

    private static (RunState S, List<RunEffect> Fx) Run(RunState s, params RunCommand[] commands)
    {
        var fx = new List<RunEffect>();
        foreach (var c in commands)
        {
            var t = RunMachine.Handle(s, c);
            s = t.State;
            fx.AddRange(t.Effects);
        }
        return (s, fx);
    }

    [Fact]
    public void Batches_sent_to_a_loader_that_dies_after_its_shards_moved_to_a_newcomer_are_sent_again()
    {
        var spec = ToyCluster.Spec("replan", ranks: 2, micro: 1, accum: 2, epochs: 1, shards: 4, startWorkers: 2);
        var s = RunState.Submit(spec);
        var ids = Enumerable.Range(0, 16).Select(i => (long)i).ToArray();
        // one loader prepares every shard, two workers start step 0 (and step 1 is planned ahead): every batch goes to L2
        (s, var fx) = Run(s, new MembershipChanged(new[] { "L2" }, 1, 2, Workers),
            new ShardsReported(new[] { 0, 1, 2, 3 }, ids, ids, Array.Empty<string>()));
        var start = Assert.Single(fx.OfType<StartStepEffect>());
        Assert.Equal(0, start.GlobalStep);
        Assert.NotNull(start.Next);
        int sent = start.MicroBatches.Sum(r => r.Length) + start.Next!.Sum(r => r.Length);
        Assert.Equal(sent, s.View.SentTo.Count);
        Assert.All(s.View.SentTo.Values, l => Assert.Equal("L2", l));

        // L1 joins: half the shards move to it, but the batches already sent stay with L2 (it builds them)
        (s, fx) = Run(s, new MembershipChanged(new[] { "L1", "L2" }, 1, 2, Workers));
        Assert.DoesNotContain(fx, e => e is ReplanBatchesEffect);
        Assert.Contains(s.Shards.Owner.Values, l => l == "L1");
        Assert.All(s.View.SentTo.Values, l => Assert.Equal("L2", l));

        // L2 dies before it delivered them: every batch of step 0 and of step 1 is lost, not only those of its shards now
        (s, fx) = Run(s, new MembershipChanged(new[] { "L1" }, 1, 2, Workers));
        var replan = Assert.Single(fx.OfType<ReplanBatchesEffect>());
        Assert.Equal(new[] { "L2" }, replan.Gone);
        Assert.Equal(sent, replan.Lost.Count);
        Assert.Contains(replan.Lost, b => b.Step == 1);
        // and they are now with L1, so a later loss is judged by that
        Assert.Equal(sent, s.View.SentTo.Count);
        Assert.All(s.View.SentTo.Values, l => Assert.Equal("L1", l));
    }

    [Fact]
    public void A_commit_forgets_the_committed_steps_batches_and_keeps_those_planned_ahead()
    {
        var spec = ToyCluster.Spec("replan", ranks: 2, micro: 1, accum: 1, epochs: 1, shards: 2, startWorkers: 2);
        var ids = Enumerable.Range(0, 12).Select(i => (long)i).ToArray();
        var (s, _) = Run(RunState.Submit(spec), new MembershipChanged(new[] { "L1" }, 1, 2, Workers),
            new ShardsReported(new[] { 0, 1 }, ids, ids, Array.Empty<string>()));
        (s, var fx) = Run(s, new StepReported(1, 0, 0, new[] { 1.0, 2.0 }, 5UL), new StepReported(1, 0, 1, new[] { 1.0, 2.0 }, 5UL));
        Assert.Contains(fx, e => e is StepCommittedEffect);
        var next = Assert.Single(fx.OfType<StartStepEffect>());
        Assert.True(next.AlreadyPlanned);
        Assert.DoesNotContain(s.View.SentTo.Keys, b => b.Step == 0);
        Assert.Contains(s.View.SentTo.Keys, b => b.Step == 1);
        Assert.Contains(s.View.SentTo.Keys, b => b.Step == 2);
    }
}
