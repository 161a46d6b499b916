using System.Collections.Immutable;
using HiggsCluster.Coordinator.Planning;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>Which loader builds which micro-batch: the owner of its first sample's shard, each micro-batch on its own.</summary>
public class BatchRoutingTests
{
    private static ShardTable Owned(int shards, params (int Shard, string Loader)[] owners) =>
        new(shards, 1, owners.ToImmutableSortedDictionary(o => o.Shard, o => o.Loader));

    [Fact]
    public void Each_micro_batch_goes_to_the_owner_of_its_first_samples_shard()
    {
        var table = Owned(4, (0, "L0"), (1, "L1"), (2, "L0"), (3, "L1"));
        long[][][] cut = { new[] { new long[] { 4, 1 }, new long[] { 5, 0 } }, new[] { new long[] { 2, 3 }, new long[] { 7, 6 } } };

        var routed = BatchRouting.Plan(table, "r", generation: 3, epoch: 1, step: 9, cut);

        Assert.Empty(routed.Unowned);
        Assert.Equal(new[] { ("L0", 0, 0), ("L1", 0, 1), ("L0", 1, 0), ("L1", 1, 1) },
            routed.Routes.Select(r => (r.Loader, r.Plan.Rank, r.Plan.Micro)));
        Assert.All(routed.Routes, r => Assert.Equal(("r", 3L, 1, 9L), (r.Plan.RunId, r.Plan.Generation, r.Plan.Epoch, r.Plan.Step)));
        Assert.Equal(cut[1][1], routed.Routes[3].Plan.SampleIds);
    }

    /// <summary>
    /// The coordinator used to return from its planning loop at the first micro-batch without an owner, so the
    /// micro-batches after it (other ranks included) were never sent and their workers waited for them.
    /// </summary>
    [Fact]
    public void A_micro_batch_without_an_owner_does_not_hold_back_the_others()
    {
        var table = Owned(4, (0, "L0"), (1, "L1"), (2, "L0")); // nobody owns shard 3
        long[][][] cut = { new[] { new long[] { 3, 0 }, new long[] { 4, 1 } }, new[] { new long[] { 7, 2 }, new long[] { 6, 5 } } };

        var routed = BatchRouting.Plan(table, "r", 1, 0, 0, cut);

        Assert.Equal(new long[] { 3, 7 }, routed.Unowned);
        Assert.Equal(new[] { (0, 1), (1, 1) }, routed.Routes.Select(r => (r.Plan.Rank, r.Plan.Micro)));
    }

    [Fact]
    public void Only_the_chosen_micro_batches_are_routed()
    {
        var table = Owned(2, (0, "L0"), (1, "L1"));
        long[][][] cut = { new[] { new long[] { 0 }, new long[] { 1 } }, new[] { new long[] { 2 }, new long[] { 3 } } };

        var routed = BatchRouting.Plan(table, "r", 1, 0, 0, cut, (rank, micro) => table.OwnerOfSample(cut[rank][micro][0]) == "L1");

        Assert.Equal(new long[] { 1, 3 }, routed.Routes.Select(r => r.Plan.SampleIds[0]));
        Assert.All(routed.Routes, r => Assert.Equal("L1", r.Loader));
    }

    [Fact]
    public void Owners_name_the_loader_of_each_micro_batch_and_leave_out_those_without_one()
    {
        var table = Owned(2, (0, "L0"));
        long[][][] cut = { new[] { new long[] { 0 }, new long[] { 1 } }, new[] { new long[] { 2 }, System.Array.Empty<long>() } };
        var owners = BatchRouting.Owners(table, 7, cut).ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(new Dictionary<SentBatch, string> { [new(7, 0, 0)] = "L0", [new(7, 1, 0)] = "L0" }, owners);
    }
}
