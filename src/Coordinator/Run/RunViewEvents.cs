using System.Collections.Immutable;
using HiggsCluster.Coordinator.Planning;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// A change of the coordinator's view of the cluster for one run (never journalled: a successor learns the cluster
/// again). Evolves only <see cref="RunView"/>, so it cannot make the live durable state differ from its replay.
/// </summary>
public abstract record ViewEvent : IRunEvent;

public static class ViewEvents
{
    /// <summary>The loaders Up; <see cref="Reassigned"/>: the shard table changed and goes out to them.</summary>
    public sealed record LoadersChanged(ShardTable Shards, ImmutableArray<string> LoadersUp, bool Reassigned) : ViewEvent;
    /// <summary>Loaders are there: they read and check the shards (reports are not journalled, so this is view).</summary>
    public sealed record PreparingStarted : ViewEvent;
    public sealed record ShardsRecorded(ShardsReported Report) : ViewEvent;
    public sealed record GroupChanged(long Generation, int World) : ViewEvent;
    public sealed record MembersChanged(ImmutableArray<string> Members, ImmutableHashSet<string> Synced, HandOverEffect? HandOver) : ViewEvent;
    public sealed record CommitResent(long GlobalStep, double[] Totals) : ViewEvent;
    public sealed record BatchesReplanned(ReplanBatchesEffect Replan) : ViewEvent;
    /// <summary>The next step goes out; batches went to the loaders through <see cref="PlannedThrough"/>.</summary>
    public sealed record StepStarted(StartStepEffect Step, (long Generation, long Step) PlannedThrough, string Detail) : ViewEvent;
    /// <summary>The step in flight is dropped (it was not committed, so it is simply planned again).</summary>
    public sealed record StepAbandoned(string Detail) : ViewEvent;
    public sealed record Reported(int Rank, double[] Stats, ulong Checksum) : ViewEvent;
    /// <summary>Every member reported and applies the commit: each holds the new state.</summary>
    public sealed record CommitApplied : ViewEvent;
    /// <summary>No step runs now, for the reason in <see cref="Detail"/>.</summary>
    public sealed record Idle(string Detail) : ViewEvent;
    /// <summary>Only what the run is doing changes (shown in its status).</summary>
    public sealed record Noted(string Detail) : ViewEvent;
    public sealed record HandOverAsked(HandOverEffect Effect, string Detail) : ViewEvent;
    /// <summary>The last hand-over did not complete: asked again, whatever runs meanwhile goes on.</summary>
    public sealed record HandOverAskedAgain(HandOverEffect Effect, string Detail) : ViewEvent;
    /// <summary>No hand-over is awaited any more (<see cref="Detail"/> null: the status is unchanged).</summary>
    public sealed record HandOverOver(string? Detail) : ViewEvent;
    public sealed record HandOverFailed(string WorkerId, string Detail) : ViewEvent;
    public sealed record WorkerSynced(string WorkerId) : ViewEvent;
    /// <summary>Whether the run waits for a worker to say it holds the committed state (after a take-over).</summary>
    public sealed record AwaitingProgress(bool Awaiting) : ViewEvent;
    /// <summary>Nobody that held the committed state came back, but it is the run's start state, which every member holds.</summary>
    public sealed record StartStateHeld(ImmutableHashSet<string> Synced, string Detail) : ViewEvent;
    public sealed record RestoreAsked(RestoreEffect Restore) : ViewEvent;
    public sealed record RollBackStarted(RestoreEffect Restore, string Detail) : ViewEvent;
    /// <summary>Every member loaded the checkpoint of the roll-back (<see cref="Detail"/> null: the status is unchanged).</summary>
    public sealed record Restored(string? Detail) : ViewEvent;
    public sealed record ResumeWaitEnded : ViewEvent;
    /// <summary>The recovered run goes on with the group there.</summary>
    public sealed record Resumed : ViewEvent;
    public sealed record Rejected(string Reason) : ViewEvent;
}
