using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Planning;

/// <summary>
/// Which loader builds which micro-batch of a step: the one owning the shard of its first sample (code-cache
/// locality). Pure, so the actor only sends what it returns.
/// </summary>
public static class BatchRouting
{
    /// <summary>One plan message and the loader (its address) that gets it.</summary>
    public sealed record Route(string Loader, PlanMicroBatch Plan);

    /// <summary>
    /// <see cref="Routes"/>: the micro-batches with an owner. <see cref="Unowned"/>: first sample ids of those without
    /// one (no loader holds their shard yet); they are planned again once loaders come (a re-plan), the others go out now.
    /// </summary>
    public sealed record Outcome(IReadOnlyList<Route> Routes, IReadOnlyList<long> Unowned);

    /// <param name="cut">[rank][micro] sample ids of the step</param>
    /// <param name="which">which micro-batches to route (rank, ids); null: all</param>
    public static Outcome Plan(ShardTable shards, string runId, long generation, int epoch, long step, long[][][] cut,
        Func<int, long[], bool>? which = null)
    {
        var routes = new List<Route>();
        var unowned = new List<long>();
        for (int rank = 0; rank < cut.Length; rank++)
            for (int micro = 0; micro < cut[rank].Length; micro++)
            {
                var ids = cut[rank][micro];
                if (ids.Length == 0 || (which is not null && !which(rank, ids))) continue;
                // one micro-batch without an owner must not hold back the others: each is routed on its own
                if (shards.OwnerOfSample(ids[0]) is not { } loader) { unowned.Add(ids[0]); continue; }
                routes.Add(new Route(loader, new PlanMicroBatch(runId, generation, epoch, step, rank, micro, ids)));
            }
        return new Outcome(routes, unowned);
    }
}
