using System.Collections.Immutable;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;
using static HiggsCluster.Coordinator.Run.ViewEvents;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// The coordinator's view of the cluster for one run: loaders and shard owners, the worker group and who in it holds
/// the committed state, the step in flight and its reports, a hand-over or roll-back in progress, a fail-over's wait.
/// Never journalled: a successor starts from <see cref="Recovered"/> and learns the rest again.
/// </summary>
public sealed record RunView(
    bool Preparing,
    ImmutableSortedDictionary<int, ShardsReported> Prepared,
    ShardTable Shards,
    ImmutableArray<string> LoadersUp,
    long Generation,
    int World,
    ImmutableArray<string> Members,
    ImmutableHashSet<string> Synced,
    StartStepEffect? InFlight,
    ImmutableSortedDictionary<int, (double[] Stats, ulong Checksum)> Reports,
    (long Generation, long Step) PlannedThrough,
    HandOverEffect? HandOver,
    RestoreEffect? Restoring,
    bool AwaitProgress,
    bool Resuming,
    int ResumeWorld,
    string Detail)
{
    /// <summary>Nobody is known: the view of a run just submitted.</summary>
    public static RunView Start(RunSpec spec, string detail = "submitted") => new(false, ImmutableSortedDictionary<int, ShardsReported>.Empty,
        ShardTable.Empty(spec.ShardCount), ImmutableArray<string>.Empty, 0, 0, ImmutableArray<string>.Empty, ImmutableHashSet<string>.Empty,
        null, ImmutableSortedDictionary<int, (double[], ulong)>.Empty, (-1, -1), null, null, false, false, 0, detail);

    /// <summary>
    /// The view of a coordinator that took <paramref name="run"/> over: a planned run resumes once the group of its last
    /// committed step is back (or the wait is over), and who holds the committed state is learnt from the workers'
    /// registrations. Batches planned ahead went to the old coordinator's generation: the first steps are planned afresh.
    /// </summary>
    public static RunView Recovered(RunDurable run)
    {
        if (run.Plan is null) return Start(run.Spec, "recovered: preparing again");
        // the group of the last step this cluster trained (a resumed run's earlier steps have generation -1)
        int world = run.Cursor.Ledger.LastOrDefault(r => r.Generation >= 0)?.World ?? run.Spec.StartWorkers;
        return Start(run.Spec, $"recovered at step {run.Cursor.GlobalStep}: waiting for {world} workers")
            with { AwaitProgress = true, Resuming = true, ResumeWorld = world };
    }

    public RunView Evolve(ViewEvent e) => e switch
    {
        LoadersChanged l => this with { Shards = l.Shards, LoadersUp = l.LoadersUp },
        PreparingStarted => this with { Preparing = true, Detail = "preparing shards" },
        ShardsRecorded r => this with { Prepared = r.Report.ShardIds.Aggregate(Prepared, (p, id) => p.SetItem(id, r.Report)) },
        GroupChanged g => this with { Generation = g.Generation, World = g.World },
        MembersChanged m => this with { Members = m.Members, Synced = m.Synced, HandOver = m.HandOver },
        CommitResent or BatchesReplanned or Rejected => this,
        StepStarted s => this with { InFlight = s.Step, Reports = Reports.Clear(), PlannedThrough = s.PlannedThrough, Detail = s.Detail },
        StepAbandoned a => this with { InFlight = null, Reports = Reports.Clear(), Detail = a.Detail },
        Reported r => this with { Reports = Reports.Add(r.Rank, (r.Stats, r.Checksum)) },
        CommitApplied => this with { InFlight = null, Reports = Reports.Clear(), Synced = Members.ToImmutableHashSet(), HandOver = null, AwaitProgress = false },
        Idle i => this with { InFlight = null, Detail = i.Detail },
        Noted n => this with { Detail = n.Detail },
        HandOverAsked h => this with { InFlight = null, HandOver = h.Effect, Detail = h.Detail },
        HandOverAskedAgain h => this with { HandOver = h.Effect, Detail = h.Detail },
        HandOverOver h => this with { HandOver = null, Detail = h.Detail ?? Detail },
        HandOverFailed f => this with { Synced = Synced.Remove(f.WorkerId), HandOver = null, Detail = f.Detail },
        WorkerSynced w => this with { Synced = Synced.Add(w.WorkerId) },
        AwaitingProgress a => this with { AwaitProgress = a.Awaiting },
        StartStateHeld s => this with { AwaitProgress = false, Synced = s.Synced, Detail = s.Detail },
        RestoreAsked r => this with { Restoring = r.Restore },
        RollBackStarted r => this with
        {
            Restoring = r.Restore, InFlight = null, Reports = Reports.Clear(), PlannedThrough = (-1, -1), Synced = ImmutableHashSet<string>.Empty,
            AwaitProgress = false, Resuming = false, ResumeWorld = 0, HandOver = null, Detail = r.Detail,
        },
        Restored r => this with { Restoring = null, Detail = r.Detail ?? Detail },
        ResumeWaitEnded => this with { ResumeWorld = 0 },
        Resumed => this with { Resuming = false, ResumeWorld = 0 },
        _ => throw new ArgumentException($"unknown view event {e.GetType().Name}"),
    };
}
