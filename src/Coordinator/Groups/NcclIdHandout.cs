using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Groups;

/// <summary>
/// The group a run's workers hold now, as far as the NCCL id goes: rank 0 creates the id, the coordinator hands the
/// first one reported for the current generation to every rank. Ids are never journalled: a new generation (also
/// after a coordinator failover) gets a new one.
/// </summary>
public sealed record NcclIdHandout(long Generation, AllReduceBackend Backend, byte[]? Id)
{
    public sealed record Outcome(NcclIdHandout? State, bool Broadcast, string? Ignored);

    /// <summary>Rank 0 reported an id: hand it out once, if it belongs to the current NCCL generation.</summary>
    public static Outcome Accept(NcclIdHandout? current, NcclIdCreated m)
    {
        if (current is null) return new(null, false, $"run {m.RunId} has no group");
        if (m.Generation != current.Generation)
            return new(current, false, $"id of generation {m.Generation} is stale (current {current.Generation})");
        if (current.Backend != AllReduceBackend.Nccl) return new(current, false, $"generation {m.Generation} uses {current.Backend}");
        if (m.Id is not { Length: > 0 }) return new(current, false, $"empty id for generation {m.Generation}");
        if (current.Id is not null)
            return new(current, false, $"generation {m.Generation} already has its id");
        return new(current with { Id = m.Id }, true, null);
    }
}
