using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Run;

/// <summary>What the coordinator shell sends out; each is derived from one event by <see cref="RunEffects.Of"/>.</summary>
public abstract record RunEffect;
public sealed record AssignShardsEffect(ShardTable Table) : RunEffect;
/// <summary>Every shard is prepared: the plan is fixed. Workers get the ids; problems are reported once.</summary>
public sealed record RunPlannedEffect(long[] TrainIds, long[] ValidationIds, string[] Problems) : RunEffect;
/// <summary>
/// Run global step <see cref="GlobalStep"/>: <see cref="MicroBatches"/>[worker][micro] are the sample ids; they were
/// already sent to the loaders when <see cref="AlreadyPlanned"/>. <see cref="Next"/> is the following step's cut, planned
/// now so loaders build it while this step computes (the worker holds early batches until their step starts).
/// </summary>
public sealed record StartStepEffect(long Generation, int Epoch, long GlobalStep, long[][][] MicroBatches,
    bool AlreadyPlanned = false, long[][][]? Next = null, int NextEpoch = 0) : RunEffect;
/// <summary>
/// Loaders left while a step was in flight (or the first came): the micro-batches of that step and of the step planned
/// ahead that had gone to them, or to nobody, are <see cref="Lost"/>; they go to their owners now (same plan, same group).
/// Lost is decided by where each batch was sent, not by who owns its shard now: shards may have moved to a loader that
/// joined after the batch went out.
/// </summary>
public sealed record ReplanBatchesEffect(StartStepEffect Step, IReadOnlyList<string> Gone, IReadOnlySet<SentBatch> Lost) : RunEffect;
public sealed record StepCommittedEffect(StepRecord Record, double[] Totals) : RunEffect;
/// <summary><see cref="Worker"/>: who writes it (a worker holding the committed state; null: any).</summary>
public sealed record CheckpointEffect(long GlobalStep, string Tag, bool Final, string? Worker = null) : RunEffect;
public sealed record ValidateEffect(long GlobalStep, string? Worker = null) : RunEffect;
/// <summary>
/// Worker <see cref="From"/> (holding the committed state of <see cref="GlobalStep"/> steps) sends adapter and
/// optimizer state to <see cref="To"/>, who joined after the last commit; the step starts once they installed it.
/// </summary>
public sealed record HandOverEffect(long Generation, long GlobalStep, string From, string[] To) : RunEffect;
/// <summary>
/// <see cref="Workers"/> load the checkpoint of <see cref="GlobalStep"/> steps at <see cref="Path"/> (null: the run's
/// initial adapter) into memory: the run rolled back to it. <see cref="RollBack"/>: this effect started the roll-back
/// (journalled; its first worker also cuts the metrics log back), rather than asking members that joined since.
/// </summary>
public sealed record RestoreEffect(long Generation, long GlobalStep, string? Path, string[] Workers, bool RollBack = false) : RunEffect;
public sealed record RunEndedEffect(RunPhase Phase, string Reason) : RunEffect;
/// <summary>
/// After a coordinator fail-over: the last committed step again, for workers whose commit was lost with the old
/// coordinator (a worker that already applied it ignores it).
/// </summary>
public sealed record ResendCommitEffect(long GlobalStep, double[] Totals) : RunEffect;
public sealed record CommandRejected(string Reason) : RunEffect;

public static class RunEffects
{
    /// <summary>
    /// What the shell does for <paramref name="e"/>, given the state right after it (null: nothing to send). The only
    /// source of effects: a checkpoint or validation goes to the lead of that state, a member holding the committed state.
    /// </summary>
    public static RunEffect? Of(RunState after, IRunEvent e) => e switch
    {
        RunEvents.Planned p => new RunPlannedEffect(p.TrainIds, p.ValidationIds, p.Problems),
        RunEvents.StepCommitted c => new StepCommittedEffect(c.Record, c.Totals),
        RunEvents.CheckpointStarted c => new CheckpointEffect(c.GlobalStep, c.Tag, c.Final, after.Lead),
        RunEvents.ValidationStarted v => new ValidateEffect(v.GlobalStep, after.Lead),
        RunEvents.Ended x => new RunEndedEffect(x.Phase, x.Reason),
        ViewEvents.LoadersChanged { Reassigned: true } l => new AssignShardsEffect(l.Shards),
        ViewEvents.CommitResent c => new ResendCommitEffect(c.GlobalStep, c.Totals),
        ViewEvents.StepStarted s => s.Step,
        ViewEvents.BatchesReplanned r => r.Replan,
        ViewEvents.HandOverAsked h => h.Effect,
        ViewEvents.HandOverAskedAgain h => h.Effect,
        ViewEvents.RestoreAsked r => r.Restore,
        ViewEvents.RollBackStarted r => r.Restore,
        ViewEvents.Rejected r => new CommandRejected(r.Reason),
        _ => null,
    };
}
