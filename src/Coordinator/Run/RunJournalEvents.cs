using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Run;

/// <summary>What <see cref="RunMachine.Decide"/> answers: a durable <see cref="RunEvent"/> or a transient <see cref="ViewEvent"/>.</summary>
public interface IRunEvent;

/// <summary>
/// What the coordinator journals about a run: the facts a successor coordinator needs to continue it. Each evolves only
/// the run's durable part (<see cref="RunDurable.Evolve"/>), the same way live and in replay; who is in the cluster right
/// now is not journalled, it is learnt again after a fail-over.
/// Written by <see cref="JournalSerializer"/> (never sent between nodes, so not an <see cref="IControlMessage"/>).
/// The record names and fields must stay: journals written before the JSON format hold Hyperion rows of them.
/// </summary>
public abstract record RunEvent(string RunId) : IRunEvent;

public static class RunEvents
{
    public sealed record Submitted(RunSpec Spec) : RunEvent(Spec.RunId);
    /// <summary>The loaders prepared every shard: the plan is fixed by these ids (problems: the entries left out, for the ledger).</summary>
    public sealed record Planned(string Id, long[] TrainIds, long[] ValidationIds, string[] Problems) : RunEvent(Id);
    /// <summary>Journalled before any worker hears of the commit, so a step is never applied by workers but unknown here.</summary>
    public sealed record StepCommitted(string Id, StepRecord Record, double[] Totals) : RunEvent(Id);
    public sealed record CheckpointStarted(string Id, long GlobalStep, string Tag, bool Final) : RunEvent(Id);
    public sealed record CheckpointDone(string Id, long GlobalStep, string? Path = null) : RunEvent(Id);
    public sealed record ValidationStarted(string Id, long GlobalStep, bool Final) : RunEvent(Id);
    public sealed record ValidationDone(string Id, long GlobalStep, double Loss) : RunEvent(Id);
    public sealed record CheckpointRequested(string Id, string? Tag) : RunEvent(Id);
    public sealed record ValidationRequested(string Id) : RunEvent(Id);
    public sealed record Ended(string Id, RunPhase Phase, string Reason) : RunEvent(Id);
    /// <summary>No worker held the committed state: the run went back to the checkpoint of <see cref="GlobalStep"/> steps (Path null: its start).</summary>
    public sealed record RolledBack(string Id, long GlobalStep, string? Path, double? BestLoss, int ValidationsWithoutImprovement) : RunEvent(Id);
}

/// <summary>
/// Coordinator-wide: a worker group generation was handed out. Generations must grow across coordinator
/// incarnations, because workers and loaders ignore a group or plan older than the one they know.
/// </summary>
public sealed record WorkerGroupFormed(long Generation);
