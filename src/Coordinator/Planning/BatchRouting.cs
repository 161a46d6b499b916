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
    /// <param name="which">which micro-batches to route (rank, micro); null: all</param>
    public static Outcome Plan(ShardTable shards, string runId, long generation, int epoch, long step, long[][][] cut,
        Func<int, int, bool>? which = null)
    {
        var routes = new List<Route>();
        var unowned = new List<long>();
        for (int rank = 0; rank < cut.Length; rank++)
            for (int micro = 0; micro < cut[rank].Length; micro++)
            {
                var ids = cut[rank][micro];
                if (ids.Length == 0 || (which is not null && !which(rank, micro))) continue;
                // one micro-batch without an owner must not hold back the others: each is routed on its own
                if (shards.OwnerOfSample(ids[0]) is not { } loader) { unowned.Add(ids[0]); continue; }
                routes.Add(new Route(loader, new PlanMicroBatch(runId, generation, epoch, step, rank, micro, ids)));
            }
        return new Outcome(routes, unowned);
    }

    /// <summary>The loader each micro-batch of <paramref name="step"/> goes to under <paramref name="shards"/> (those without an owner are left out).</summary>
    public static IEnumerable<KeyValuePair<SentBatch, string>> Owners(ShardTable shards, long step, long[][][] cut)
    {
        for (int rank = 0; rank < cut.Length; rank++)
            for (int micro = 0; micro < cut[rank].Length; micro++)
                if (cut[rank][micro] is { Length: > 0 } ids && shards.OwnerOfSample(ids[0]) is { } loader)
                    yield return new(new SentBatch(step, rank, micro), loader);
    }
}

/// <summary>One micro-batch of a step, as the coordinator sent it to a loader.</summary>
public readonly record struct SentBatch(long Step, int Rank, int Micro);
