using HiggsCluster.Coordinator.Groups;
using HiggsCluster.GpuWorker.Groups;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The ring key: one per run and generation from the coordinator, carried by the group into the ring formation.</summary>
public sealed class RingKeyHandoutTests
{
    [Fact]
    public void A_key_is_stable_within_a_generation_and_new_for_each_generation_and_run()
    {
        var k = RingKeys.For("run-a", 3);
        Assert.Equal(32, k.Length);
        Assert.Equal(k, RingKeys.For("run-a", 3)); // a resent group carries the same key
        Assert.NotEqual(k, RingKeys.For("run-a", 4));
        Assert.NotEqual(k, RingKeys.For("run-b", 3));
    }

    [Fact]
    public void The_worker_forms_its_ring_with_the_key_of_the_group_it_was_sent()
    {
        var peers = new[] { new RingPeer(0, "w0", "127.0.0.1", 1000), new RingPeer(1, "w1", "127.0.0.1", 1001) };
        var key = RingKeys.For("run-a", 7);
        var r = GroupFormation.None.Handle(new AllReduceGroup("run-a", 7, peers, null) { RingKey = key }, "w1");
        var form = Assert.Single(r.Effects.OfType<FormRing>());
        Assert.Equal(key, form.Key);
        Assert.Equal(1, form.Rank);
    }
}
