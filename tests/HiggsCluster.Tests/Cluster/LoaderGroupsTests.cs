using HiggsCluster.DataLoaderNode.Serving;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>Which group a loader serves and who pulls each rank, without actors.</summary>
public class LoaderGroupsTests
{
    [Fact]
    public void Plans_of_an_older_group_are_dropped_and_a_newer_group_resets()
    {
        var g = LoaderGroups<string>.Empty;
        Assert.Equal(long.MinValue, g.GenerationOf("r"));
        var (g1, v) = g.Plan("r", 2);
        Assert.Equal(PlanGroup.Newer, v);
        Assert.Equal(2, g1.GenerationOf("r"));
        Assert.Equal(PlanGroup.Current, g1.Plan("r", 2).Verdict);
        Assert.Equal(PlanGroup.Stale, g1.Plan("r", 1).Verdict);
        Assert.Equal(2, g1.Plan("r", 1).State.GenerationOf("r"));
        Assert.Equal(PlanGroup.Newer, g1.Plan("other", 1).Verdict); // runs are independent
    }

    /// <summary>
    /// After a regroup the rank is pulled by the new group's worker: a late demand from the old group (its rank
    /// numbering is gone) neither replaces it nor is taken before the new group's plan arrived.
    /// </summary>
    [Fact]
    public void A_rank_is_pulled_by_the_worker_of_the_newest_group()
    {
        var g = LoaderGroups<string>.Empty.Plan("r", 1).State.Demand("r", 0, 1, "old")!;
        Assert.True(g.TryPuller("r", 0, out var w) && w == "old");

        // the new group's worker may ask before the new plan arrives
        g = g.Demand("r", 0, 2, "new")!;
        Assert.True(g.TryPuller("r", 0, out w) && w == "new");
        Assert.Null(g.Demand("r", 0, 1, "old"));

        g = g.Plan("r", 3).State;
        Assert.Null(g.Demand("r", 0, 2, "new"));
        Assert.Null(g.Demand("r", 1, 2, "x"));
        Assert.False(g.TryPuller("r", 1, out _));
        Assert.True(g.Demand("r", 1, 3, "y")!.TryPuller("r", 1, out w) && w == "y");
    }
}
