using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// What the coordinator journals about a run: the facts a successor coordinator needs to continue it. Replaying them
/// with <see cref="RunState.Apply"/> gives the run's durable state (plan, ledger, phase, pending requests); who is in
/// the cluster right now is not journalled, it is learnt again after a fail-over.
/// Written by <see cref="JournalSerializer"/> (never sent between nodes, so not an <see cref="IControlMessage"/>).
/// </summary>
public abstract record RunEvent(string RunId);

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

/// <summary>Which events one <see cref="RunState.Handle"/> call implies (pure; the shell journals them before acting).</summary>
public static class RunJournal
{
    public static IReadOnlyList<RunEvent> EventsOf(RunState before, RunCommand cmd, RunState after, IReadOnlyList<RunEffect> effects)
    {
        var id = before.Spec.RunId;
        var events = new List<RunEvent>();
        bool rejected = effects.Any(e => e is CommandRejected);
        if (!rejected)
        {
            switch (cmd)
            {
                case CheckpointFinished c: events.Add(new RunEvents.CheckpointDone(id, c.GlobalStep, c.Path)); break;
                case ValidationFinished v: events.Add(new RunEvents.ValidationDone(id, v.GlobalStep, v.Loss)); break;
                case CheckpointRequested: events.Add(new RunEvents.CheckpointRequested(id, after.PendingCheckpointTag)); break;
                case ValidationRequested: events.Add(new RunEvents.ValidationRequested(id)); break;
            }
        }
        foreach (var fx in effects)
        {
            switch (fx)
            {
                case RunPlannedEffect p: events.Add(new RunEvents.Planned(id, p.TrainIds, p.ValidationIds, p.Problems)); break;
                case StepCommittedEffect c: events.Add(new RunEvents.StepCommitted(id, c.Record, c.Totals)); break;
                case CheckpointEffect c: events.Add(new RunEvents.CheckpointStarted(id, c.GlobalStep, c.Tag, c.Final)); break;
                case ValidateEffect v:
                    events.Add(new RunEvents.ValidationStarted(id, v.GlobalStep, after.Plan is { } plan && v.GlobalStep >= plan.TotalSteps));
                    break;
                case RunEndedEffect e: events.Add(new RunEvents.Ended(id, e.Phase, e.Reason)); break;
                case RestoreEffect { RollBack: true } r:
                    events.Add(new RunEvents.RolledBack(id, r.GlobalStep, r.Path, after.BestValidationLoss, after.ValidationsWithoutImprovement));
                    break;
            }
        }
        return events;
    }
}
