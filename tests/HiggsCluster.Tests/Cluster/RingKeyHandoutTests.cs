using HiggsCluster.Coordinator.Groups;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.Messages;
using HiggsCluster.Training.IO;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The ring key: one per run and generation from the coordinator, carried by the group into the ring formation.</summary>
public sealed class RingKeyHandoutTests
{
    [Fact]
    public void A_key_is_stable_within_a_generation_and_new_for_each_generation_and_run()
    {
        var keys = RingKeys.Create();
        var k = keys.For("run-a", 3);
        Assert.Equal(32, k.Length);
        Assert.Equal(k, keys.For("run-a", 3)); // a resent group carries the same key
        Assert.NotEqual(k, keys.For("run-a", 4));
        Assert.NotEqual(k, keys.For("run-b", 3));
        Assert.NotEqual(k, RingKeys.Create().For("run-a", 3)); // another coordinator incarnation: another secret
    }

    [Fact]
    public void The_worker_forms_its_ring_with_the_key_of_the_group_it_was_sent()
    {
        var peers = new[] { new RingPeer(0, "w0", "127.0.0.1", 1000), new RingPeer(1, "w1", "127.0.0.1", 1001) };
        var key = RingKeys.Create().For("run-a", 7);
        var r = GroupFormation.None.Handle(new AllReduceGroup("run-a", 7, peers, null) { RingKey = key }, "w1");
        var form = Assert.Single(r.Effects.OfType<FormRing>());
        Assert.Equal(key, form.Key);
        Assert.Equal(1, form.Rank);
    }

    /// <summary>
    /// Coordinator fail-over: the old coordinator journalled generation 3 and handed its group out; worker w0 still
    /// holds it when the successor (own secret) replays the journal and forms its group. The successor cannot reuse 3,
    /// its group is 4: w0 with the old group and w1 with the new one do not form a ring (different keys, different
    /// generations); when w0 receives group 4 it re-forms, and the two ranks all-reduce.
    /// </summary>
    [Fact(Timeout = 60_000)]
    [Trait("Category", "Cluster")] // real sockets on 127.0.0.1, as the other ring tests
    [Trait("Category", "Adversarial")]
    public async Task After_a_fail_over_the_successor_never_reuses_a_generation_and_an_old_group_cannot_join_the_new_ring()
    {
        var ct = TestContext.Current.CancellationToken;
        using var l0 = RingListener.Start();
        using var l1 = RingListener.Start();
        var peers = new[] { new RingPeer(0, "w0", "127.0.0.1", l0.EndPoint.Port), new RingPeer(1, "w1", "127.0.0.1", l1.EndPoint.Port) };
        var eps = new[] { l0.EndPoint, l1.EndPoint };
        static RegisterWorker W(string id, int port) => new(id, "127.0.0.1", port, false);

        // the old coordinator's group: generation 3, journalled as WorkerGroupFormed(3)
        var oldKeys = RingKeys.Create();
        var old = WorkerRoster<string>.Empty.Register("n0/w", W("w0", peers[0].Port), "w0").Register("n1/w", W("w1", peers[1].Port), "w1").Formed(3);
        var oldGroup = new AllReduceGroup("run", old.Generation, old.Group.ToArray(), null) { RingKey = oldKeys.For("run", old.Generation) };
        var w0 = GroupFormation.None.Handle(oldGroup, "w0");

        // the successor replays the journal, the workers register again: it cannot form generation 3 again
        var newKeys = RingKeys.Create();
        var successor = WorkerRoster<string>.Empty.Recovered(3).Register("n0/w", W("w0", peers[0].Port), "w0").Register("n1/w", W("w1", peers[1].Port), "w1");
        Assert.True(successor.NeedsRegroup);
        Assert.Throws<ArgumentException>(() => successor.Formed(3));
        successor = successor.Formed(4);
        var newGroup = new AllReduceGroup("run", successor.Generation, successor.Group.ToArray(), null) { RingKey = newKeys.For("run", successor.Generation) };
        Assert.NotEqual(oldKeys.For("run", 3), newKeys.For("run", 3)); // even a reused number would carry another key

        // w0 still on the old group, w1 on the new one: no ring
        var stale = Assert.Single(w0.Effects.OfType<FormRing>());
        var fresh = Assert.Single(GroupFormation.None.Handle(newGroup, "w1").Effects.OfType<FormRing>());
        var r0 = TcpRingAllReduce.ConnectAsync(l0, stale.Rank, eps, stale.Generation, stale.Key, TimeSpan.FromSeconds(3), ct);
        var r1 = TcpRingAllReduce.ConnectAsync(l1, fresh.Rank, eps, fresh.Generation, fresh.Key, TimeSpan.FromSeconds(3), ct);
        await Assert.ThrowsAsync<AllReduceException>(() => r0);
        await Assert.ThrowsAsync<AllReduceException>(() => r1);

        // the next group heals it: newer than what w0 holds, so it aborts the old ring and forms the new one
        var healed = w0.State.Handle(newGroup, "w0");
        Assert.True(healed.NewGroup);
        var again = Assert.Single(healed.Effects.OfType<FormRing>());
        Assert.Equal(4L, again.Generation);
        Assert.Equal(newKeys.For("run", 4), again.Key);
        Assert.Contains(healed.Effects, e => e is AbortCommunicator);
        // and a late copy of the old group cannot take it back
        Assert.Empty(healed.State.Handle(oldGroup, "w0").Effects);

        var c0 = TcpRingAllReduce.ConnectAsync(l0, again.Rank, eps, again.Generation, again.Key, TimeSpan.FromSeconds(20), ct);
        var c1 = TcpRingAllReduce.ConnectAsync(l1, fresh.Rank, eps, fresh.Generation, fresh.Key, TimeSpan.FromSeconds(20), ct);
        using var ring0 = await c0;
        using var ring1 = await c1;
        var a = new float[] { 1, 2 };
        var b = new float[] { 10, 20 };
        await Task.WhenAll(Task.Run(() => ring0.AllReduceSum(GradientBucket.Host(a)), ct), Task.Run(() => ring1.AllReduceSum(GradientBucket.Host(b)), ct));
        Assert.Equal(new float[] { 11, 22 }, a);
        Assert.Equal(a, b);
    }
}
