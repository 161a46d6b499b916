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
    RunActivity Doing,
    (long Generation, long Step) PlannedThrough,
    ImmutableDictionary<SentBatch, string> SentTo,
    HolderWait Holder,
    string Detail)
{
    /// <summary>Nobody is known: the view of a run just submitted.</summary>
    public static RunView Start(RunSpec spec, string detail = "submitted") => new(false, ImmutableSortedDictionary<int, ShardsReported>.Empty,
        ShardTable.Empty(spec.ShardCount), ImmutableArray<string>.Empty, 0, 0, ImmutableArray<string>.Empty, ImmutableHashSet<string>.Empty,
        RunActivity.Nothing, (-1, -1), ImmutableDictionary<SentBatch, string>.Empty, HolderWait.None, detail);

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
            with { Holder = new HolderWait.Resuming(world, HolderKnown: false) };
    }

    public StartStepEffect? InFlight => (Doing as RunActivity.Stepping)?.Step;
    public ImmutableSortedDictionary<int, (double[] Stats, ulong Checksum)> Reports =>
        (Doing as RunActivity.Stepping)?.Reports ?? ImmutableSortedDictionary<int, (double[], ulong)>.Empty;
    public HandOverEffect? HandOver => (Doing as RunActivity.HandingOver)?.HandOver;
    public RestoreEffect? Restoring => (Doing as RunActivity.Restoring)?.Restore;
    public bool AwaitProgress => Holder.AwaitsHolder;
    public bool Resuming => Holder.IsResuming;
    public int ResumeWorld => Holder.ResumeGroup;

    /// <summary>
    /// Where the batches of a starting step and of the step planned ahead went: those planned before keep the loaders
    /// they went to then; what the shell sends now goes by the current shard table (as <see cref="BatchRouting.Plan"/>).
    /// </summary>
    private ImmutableDictionary<SentBatch, string> SentWith(StartStepEffect st)
    {
        var sent = st.AlreadyPlanned ? SentTo.Where(k => k.Key.Step == st.GlobalStep).ToImmutableDictionary() : ImmutableDictionary<SentBatch, string>.Empty;
        if (!st.AlreadyPlanned) sent = sent.SetItems(BatchRouting.Owners(Shards, st.GlobalStep, st.MicroBatches));
        if (st.Next is { } next) sent = sent.SetItems(BatchRouting.Owners(Shards, st.GlobalStep + 1, next));
        return sent;
    }

    /// <summary>The lost batches of a re-plan go to the owners of their shards now (those still without one stay unsent).</summary>
    private ImmutableDictionary<SentBatch, string> Resent(ReplanBatchesEffect r)
    {
        var now = BatchRouting.Owners(Shards, r.Step.GlobalStep, r.Step.MicroBatches)
            .Concat(r.Step.Next is { } next ? BatchRouting.Owners(Shards, r.Step.GlobalStep + 1, next) : Enumerable.Empty<KeyValuePair<SentBatch, string>>())
            .Where(kv => r.Lost.Contains(kv.Key));
        return SentTo.RemoveRange(r.Lost).SetItems(now);
    }

    /// <summary>What a step, hand-over or restore ending leaves: nothing, unless something else is under way.</summary>
    private RunActivity Ending<T>() where T : RunActivity => Doing is T ? RunActivity.Nothing : Doing;

    public RunView Evolve(ViewEvent e) => e switch
    {
        LoadersChanged l => this with { Shards = l.Shards, LoadersUp = l.LoadersUp },
        PreparingStarted => this with { Preparing = true, Detail = "preparing shards" },
        ShardsRecorded r => this with { Prepared = r.Report.ShardIds.Aggregate(Prepared, (p, id) => p.SetItem(id, r.Report)) },
        GroupChanged g => this with { Generation = g.Generation, World = g.World },
        MembersChanged m => this with
        {
            Members = m.Members, Synced = m.Synced,
            Doing = m.HandOver is { } h ? new RunActivity.HandingOver(h) : Ending<RunActivity.HandingOver>(),
        },
        CommitResent or Rejected => this,
        BatchesReplanned r => this with { SentTo = Resent(r.Replan) },
        StepStarted s => this with
        {
            Doing = new RunActivity.Stepping(s.Step), PlannedThrough = s.PlannedThrough, SentTo = SentWith(s.Step), Detail = s.Detail,
        },
        StepAbandoned a => this with { Doing = Ending<RunActivity.Stepping>(), SentTo = SentTo.Clear(), Detail = a.Detail },
        Reported r => Doing is RunActivity.Stepping st
            ? this with { Doing = st with { Reports = st.Reports.Add(r.Rank, (r.Stats, r.Checksum)) } }
            : throw new InvalidOperationException($"rank {r.Rank} reported with no step in flight"),
        CommitApplied => this with
        {
            Doing = RunActivity.Nothing, Synced = Members.ToImmutableHashSet(), Holder = Holder.Awaiting(false),
            SentTo = InFlight is { } done ? SentTo.RemoveRange(SentTo.Keys.Where(k => k.Step <= done.GlobalStep)) : SentTo,
        },
        Idle i => this with { Doing = Ending<RunActivity.Stepping>(), Detail = i.Detail },
        Noted n => this with { Detail = n.Detail },
        HandOverAsked h => this with { Doing = new RunActivity.HandingOver(h.Effect), Detail = h.Detail },
        HandOverAskedAgain h => this with { Doing = new RunActivity.HandingOver(h.Effect), Detail = h.Detail },
        HandOverOver h => this with { Doing = Ending<RunActivity.HandingOver>(), Detail = h.Detail ?? Detail },
        HandOverFailed f => this with { Synced = Synced.Remove(f.WorkerId), Doing = Ending<RunActivity.HandingOver>(), Detail = f.Detail },
        WorkerSynced w => this with { Synced = Synced.Add(w.WorkerId) },
        AwaitingProgress a => this with { Holder = Holder.Awaiting(a.Awaiting) },
        StartStateHeld s => this with { Holder = Holder.Awaiting(false), Synced = s.Synced, Detail = s.Detail },
        RestoreAsked r => this with { Doing = new RunActivity.Restoring(r.Restore) },
        RollBackStarted r => this with
        {
            Doing = new RunActivity.Restoring(r.Restore), PlannedThrough = (-1, -1), SentTo = SentTo.Clear(), Synced = ImmutableHashSet<string>.Empty,
            Holder = HolderWait.None, Detail = r.Detail,
        },
        Restored r => this with { Doing = Ending<RunActivity.Restoring>(), Detail = r.Detail ?? Detail },
        ResumeWaitEnded => this with { Holder = Holder.GroupWaitOver() },
        Resumed => this with { Holder = Holder.Resumed() },
        _ => throw new ArgumentException($"unknown view event {e.GetType().Name}"),
    };
}
