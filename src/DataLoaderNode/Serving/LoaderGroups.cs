using System.Collections.Immutable;

namespace HiggsCluster.DataLoaderNode.Serving;

/// <summary>How a plan's worker group compares with the newest one the loader knows for its run.</summary>
public enum PlanGroup
{
    /// <summary>The group is already gone: the plan is dropped.</summary>
    Stale,
    /// <summary>The group the loader serves now.</summary>
    Current,
    /// <summary>A newer group: the run's windows and older plans are reset before the plan is taken.</summary>
    Newer,
}

/// <summary>
/// Which worker group a loader serves per run, and which worker pulls each rank's batches, in one pure value. Ranks
/// are renumbered per group, so both the run's newest group (learnt from plans) and each rank's puller (learnt from
/// demands) carry a generation; a plan or demand of an older group is refused. <typeparamref name="TRef"/> is how the
/// shell reaches a worker (an actor ref; tests use strings).
/// </summary>
public sealed record LoaderGroups<TRef>(
    ImmutableDictionary<string, long> Generations,
    ImmutableDictionary<(string Run, int Rank), (TRef Worker, long Generation)> Pullers)
{
    public static LoaderGroups<TRef> Empty { get; } = new(
        ImmutableDictionary.Create<string, long>(StringComparer.Ordinal),
        ImmutableDictionary<(string, int), (TRef, long)>.Empty);

    /// <summary>The newest group the loader was planned for in <paramref name="run"/> (long.MinValue: none yet).</summary>
    public long GenerationOf(string run) => Generations.GetValueOrDefault(run, long.MinValue);

    /// <summary>A plan of <paramref name="generation"/> arrived for <paramref name="run"/>.</summary>
    public (LoaderGroups<TRef> State, PlanGroup Verdict) Plan(string run, long generation)
    {
        long current = GenerationOf(run);
        if (generation < current) return (this, PlanGroup.Stale);
        if (generation == current) return (this, PlanGroup.Current);
        return (this with { Generations = Generations.SetItem(run, generation) }, PlanGroup.Newer);
    }

    /// <summary>
    /// <paramref name="worker"/> pulls as <paramref name="rank"/> of group <paramref name="generation"/>. Null when
    /// refused: a demand of a group older than the run's newest plan, or than the rank's current puller, must not steer
    /// batches to the wrong worker.
    /// </summary>
    public LoaderGroups<TRef>? Demand(string run, int rank, long generation, TRef worker)
    {
        if (generation < GenerationOf(run)) return null;
        if (Pullers.TryGetValue((run, rank), out var known) && generation < known.Generation) return null;
        return this with { Pullers = Pullers.SetItem((run, rank), (worker, generation)) };
    }

    /// <summary>The worker pulling <paramref name="rank"/>'s batches of <paramref name="run"/>, if one asked.</summary>
    public bool TryPuller(string run, int rank, out TRef worker)
    {
        var found = Pullers.TryGetValue((run, rank), out var p);
        worker = p.Worker;
        return found;
    }
}
