using HiggsCluster.Coordinator.Groups;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// Which loaders the coordinator plans on, without actors: the fix of the chaos stall (issue 18) was that a loader that
/// is unreachable for a while and then reachable again is planned on again, not forgotten until it re-joins.
/// </summary>
public sealed class LoaderMembershipTests
{
    private const string L1 = "akka.ssl.tcp://higgs@127.0.0.1:4060", L2 = "akka.ssl.tcp://higgs@127.0.0.1:4061", W = "akka.ssl.tcp://higgs@127.0.0.1:4070";

    private static LoaderMembership Seen(LoaderMembership m, params MemberSeen[] events)
    {
        foreach (var e in events) m = m.Evolve(e).Next;
        return m;
    }

    [Fact]
    public void Only_up_loaders_are_planned_on_and_an_unreachable_one_is_dropped_at_once()
    {
        var m = Seen(LoaderMembership.Empty, new MemberSeen.Up(L1, true), new MemberSeen.Up(L2, true), new MemberSeen.Up(W, false));
        Assert.Equal(new[] { L1, L2 }, m.LoadersUp);
        var (gone, changed) = m.Evolve(new MemberSeen.Unreachable(L2));
        Assert.True(changed);
        Assert.Equal(new[] { L1 }, gone.LoadersUp);
        // a worker's node going away changes nothing here (the roster handles workers)
        Assert.False(m.Evolve(new MemberSeen.Unreachable(W)).Changed);
    }

    [Fact]
    public void A_loader_unreachable_then_reachable_again_is_back_and_gets_shards()
    {
        var m = Seen(LoaderMembership.Empty, new MemberSeen.Up(L1, true), new MemberSeen.Up(L2, true));
        var run = RunState.Submit(ToyCluster.Spec("r", ranks: 2, micro: 1, accum: 1, epochs: 1, shards: 4, save: 0, val: 0, maxSteps: 0, seed: 3));
        (run, _) = run.Handle(new MembershipChanged(m.LoadersUp.ToArray(), 1, 0));
        Assert.Equal(new[] { L1, L2 }, run.Shards.ByLoader().Keys);

        // missed heartbeats on a loaded machine: its shards go to the other loader
        (m, bool changed) = m.Evolve(new MemberSeen.Unreachable(L2));
        Assert.True(changed);
        (run, var fx) = run.Handle(new MembershipChanged(m.LoadersUp.ToArray(), 1, 0));
        Assert.Equal(new[] { L1 }, run.Shards.ByLoader().Keys);

        // heard again, still Up: planned on again, with shards of its own
        (m, changed) = m.Evolve(new MemberSeen.Reachable(L2, IsUpLoader: true));
        Assert.True(changed);
        Assert.Equal(new[] { L1, L2 }, m.LoadersUp);
        (run, fx) = run.Handle(new MembershipChanged(m.LoadersUp.ToArray(), 1, 0));
        var assigned = Assert.Single(fx.OfType<AssignShardsEffect>()).Table.ByLoader();
        Assert.True(assigned.TryGetValue(L2, out var shards) && shards.Length > 0, "the loader that came back owns no shard");

        // then the other loader dies: the run still has a loader (before the fix it had none and waited forever)
        (m, _) = m.Evolve(new MemberSeen.Removed(L1));
        (run, _) = run.Handle(new MembershipChanged(m.LoadersUp.ToArray(), 1, 0));
        Assert.Equal(new[] { L2 }, run.Shards.ByLoader().Keys);
        Assert.Equal(4, run.Shards.ByLoader()[L2].Length);
    }

    [Fact]
    public void Reachable_again_is_not_planned_on_unless_it_is_an_up_loader_and_repeats_change_nothing()
    {
        var m = Seen(LoaderMembership.Empty, new MemberSeen.Up(L1, true), new MemberSeen.Unreachable(L1));
        // reachable but leaving (status no longer Up): stays out
        Assert.False(m.Evolve(new MemberSeen.Reachable(L1, IsUpLoader: false)).Changed);
        Assert.Empty(m.Evolve(new MemberSeen.Reachable(L1, IsUpLoader: false)).Next.LoadersUp);
        var back = m.Evolve(new MemberSeen.Reachable(L1, IsUpLoader: true)).Next;
        Assert.False(back.Evolve(new MemberSeen.Reachable(L1, IsUpLoader: true)).Changed);
        Assert.False(back.Evolve(new MemberSeen.Up(L1, true)).Changed);
        Assert.False(LoaderMembership.Empty.Evolve(new MemberSeen.Removed(L2)).Changed);
    }
}
