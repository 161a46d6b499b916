using System.Collections.Immutable;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// What the coordinator is doing with the worker group now, one at a time: a closed hierarchy (only the records nested
/// here), so "a step in flight while handing over" or "restoring with a step in flight" cannot be written down. A new
/// activity replaces the last: a step starts only once every member holds the committed state, so starting it ends
/// any hand-over.
/// </summary>
public abstract record RunActivity
{
    private RunActivity() { }

    public static readonly RunActivity Nothing = new Idle();

    /// <summary>No step, hand-over or restore runs (waiting for workers, loaders, a validation, a checkpoint, …).</summary>
    public sealed record Idle : RunActivity;

    /// <summary>A step went out; <see cref="Reports"/> holds each rank's statistics and LoRA checksum as they come.</summary>
    public sealed record Stepping(StartStepEffect Step, ImmutableSortedDictionary<int, (double[] Stats, ulong Checksum)> Reports) : RunActivity
    {
        public Stepping(StartStepEffect step) : this(step, ImmutableSortedDictionary<int, (double[], ulong)>.Empty) { }
    }

    /// <summary>Members that missed a commit get the committed state from a member holding it before any step starts.</summary>
    public sealed record HandingOver(HandOverEffect HandOver) : RunActivity;

    /// <summary>Members load a checkpoint (a roll-back, or newcomers during one) before the run goes on.</summary>
    public sealed record Restoring(RestoreEffect Restore) : RunActivity;
}

/// <summary>
/// Who is known to hold the committed state after a take-over or a failed hand-over: a closed hierarchy instead of the
/// "resuming" and "awaiting progress" flags. Independent of <see cref="RunActivity"/>: a run may wait for a holder to
/// register while a step whose group needs no hand-over runs.
/// </summary>
public abstract record HolderWait
{
    private HolderWait() { }

    public static readonly HolderWait None = new Settled();

    /// <summary>Nothing to wait for.</summary>
    public sealed record Settled : HolderWait;

    /// <summary>No live member is known to hold the committed state: a worker holding it must register (or the wait end).</summary>
    public sealed record AwaitingHolder : HolderWait;

    /// <summary>
    /// A coordinator took the run over: it goes on once <see cref="Group"/> workers (the group of the last committed
    /// step; 0 once the wait is over) are back. <see cref="HolderKnown"/>: a worker holding the committed state registered.
    /// </summary>
    public sealed record Resuming(int Group, bool HolderKnown) : HolderWait;

    public bool AwaitsHolder => this is AwaitingHolder or Resuming { HolderKnown: false };
    public bool IsResuming => this is Resuming;
    public int ResumeGroup => this is Resuming r ? r.Group : 0;

    /// <summary>Whether a holder must still register; a take-over stays one until it resumes.</summary>
    public HolderWait Awaiting(bool awaiting) => this switch
    {
        Resuming r => r with { HolderKnown = !awaiting },
        _ => awaiting ? new AwaitingHolder() : None,
    };

    /// <summary>The taken-over run goes on: only a holder may still be awaited.</summary>
    public HolderWait Resumed() => AwaitsHolder ? new AwaitingHolder() : None;

    public HolderWait GroupWaitOver() => this is Resuming r ? r with { Group = 0 } : this;
}
