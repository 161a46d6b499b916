using HiggsCluster.Coordinator.Planning;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class ShardTableTests
{
    private static void AssertCoveredAndBalanced(ShardTable t, params string[] loaders)
    {
        Assert.Equal(Enumerable.Range(0, t.ShardCount), t.Owner.Keys);
        Assert.All(t.Owner.Values, o => Assert.Contains(o, loaders));
        var counts = loaders.Select(l => t.Owner.Values.Count(v => v == l)).ToArray();
        Assert.True(counts.Max() - counts.Min() <= 1, $"unbalanced: {string.Join(",", counts)}");
    }

    [Fact]
    public void Shards_are_spread_evenly_and_each_has_one_owner()
    {
        var t = ShardTable.Empty(10).Rebalance(new[] { "b", "a", "c" });
        AssertCoveredAndBalanced(t, "a", "b", "c");
        Assert.Equal(1, t.Generation);
        Assert.Same(t, t.Rebalance(new[] { "c", "a", "b" })); // same membership: no new generation
    }

    [Fact]
    public void A_leaving_loader_only_moves_its_own_shards()
    {
        var t = ShardTable.Empty(12).Rebalance(new[] { "a", "b", "c", "d" });
        var t2 = t.Rebalance(new[] { "a", "b", "d" });
        AssertCoveredAndBalanced(t2, "a", "b", "d");
        Assert.All(t.Owner.Where(kv => kv.Value != "c"), kv => Assert.Equal(kv.Value, t2.Owner[kv.Key]));
        Assert.Equal(2, t2.Generation);
    }

    [Fact]
    public void A_joining_loader_takes_only_what_balance_requires()
    {
        var t = ShardTable.Empty(12).Rebalance(new[] { "a", "b" });
        var t2 = t.Rebalance(new[] { "a", "b", "c" });
        AssertCoveredAndBalanced(t2, "a", "b", "c");
        int moved = t.Owner.Count(kv => t2.Owner[kv.Key] != kv.Value);
        Assert.Equal(4, moved);
        Assert.Equal(t2.Owner[5], t2.OwnerOfSample(17)); // 17 mod 12
    }

    [Fact]
    public void No_loaders_means_no_owners_and_more_loaders_than_shards_leaves_some_idle()
    {
        var t = ShardTable.Empty(2).Rebalance(new[] { "a", "b", "c" });
        Assert.Equal(2, t.Owner.Count);
        Assert.Equal(2, t.Owner.Values.Distinct().Count());
        Assert.Empty(t.Rebalance(Array.Empty<string>()).Owner);
    }
}
