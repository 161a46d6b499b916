using System.Collections.Immutable;
using System.Globalization;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Cluster.Legacy;

// The run machine as it was before Decide/Evolve (Handle mutating via with, replay re-implemented in Apply, events
// reconstructed by EventsOf), kept only as the reference of the differential test: the rewrite must decide the same.
/// <summary>
/// Event replay and resumption: <see cref="Apply"/> folds a journalled <see cref="RunEvent"/> into the state exactly
/// as the live machine changed it (the durable part: see <see cref="Durable"/>); <see cref="Recovered"/> drops what
/// belonged to the dead coordinator's view of the cluster, and the first worker group afterwards resumes the run.
/// </summary>
public sealed partial record RunState
{
    /// <summary>The run's plan; a mixed dataset's weights come from the spec's data.manifests, as every worker reads them.</summary>
    internal static SamplePlan PlanOf(RunSpec spec, IEnumerable<long> train) =>
        new(train, spec.Seed, spec.MicroBatchSize, spec.GradAccumulation, spec.Ranks, spec.Epochs, spec.MaxSteps > 0 ? spec.MaxSteps : null,
            spec.Options.CorpusWeights);

    /// <summary>The state the events of one run lead to (the first must be <see cref="RunEvents.Submitted"/>).</summary>
    public static RunState Replay(IEnumerable<RunEvent> events)
    {
        RunState? s = null;
        foreach (var e in events)
            s = e is RunEvents.Submitted sub ? Submit(sub.Spec)
                : (s ?? throw new InvalidDataException($"run {e.RunId}: {e.GetType().Name} journalled before the run was submitted")).Apply(e);
        return s ?? throw new InvalidDataException("no events to replay");
    }

    public RunState Apply(RunEvent e)
    {
        if (e.RunId != Spec.RunId) throw new ArgumentException($"event of run {e.RunId} applied to run {Spec.RunId}");
        return e switch
        {
            RunEvents.Submitted s => Submit(s.Spec),
            RunEvents.Planned p => WithPlan(PlanOf(Spec, p.TrainIds), p.ValidationIds, p.Problems),
            RunEvents.StepCommitted c => this with
            {
                Cursor = Cursor.Commit(Plan ?? throw new InvalidDataException($"run {e.RunId}: step committed before the plan"),
                    c.Record.GlobalStep, c.Record.Generation, c.Record.World, c.Record.SampleIds),
                LastTotals = c.Totals, Phase = RunPhase.Training, InFlight = null, Reports = Reports.Clear(),
                Detail = $"step {c.Record.GlobalStep} committed",
            },
            RunEvents.CheckpointStarted c => this with
            {
                Phase = RunPhase.Checkpointing, CheckpointTag = c.Tag, Finishing = Finishing || c.Final,
                PendingCheckpointTag = c.Final ? PendingCheckpointTag : null, InFlight = null, Detail = $"checkpointing step {c.GlobalStep}",
            },
            RunEvents.CheckpointDone c => this with
            {
                Phase = RunPhase.Training, Detail = $"checkpoint of step {c.GlobalStep} written",
                LastCheckpoint = Marked(c.GlobalStep, c.Path),
            },
            RunEvents.ValidationStarted v => this with
            {
                Phase = RunPhase.Validating, Finishing = Finishing || v.Final, ValidationWanted = v.Final && ValidationWanted,
                InFlight = null, Detail = $"validating step {v.GlobalStep}",
            },
            RunEvents.ValidationDone v => ValidationRecorded(v.Loss),
            RunEvents.CheckpointRequested c => this with { PendingCheckpointTag = c.Tag },
            RunEvents.ValidationRequested => this with { ValidationWanted = true },
            RunEvents.RolledBack r => RolledBack(new CheckpointMark(r.GlobalStep, r.Path, r.BestLoss, r.ValidationsWithoutImprovement)),
            RunEvents.Ended x => this with { Phase = x.Phase, InFlight = null, Detail = x.Reason },
            _ => throw new InvalidDataException($"run {e.RunId}: unknown event {e.GetType().Name}"),
        };
    }

    /// <summary>
    /// The replayed state as a new coordinator takes it over: nobody is known to be in the cluster yet, shards are
    /// assigned again, and a planned run resumes once the group of its last committed step is back (or
    /// <see cref="ResumeWaitOver"/>): what was in progress (a checkpoint, a validation) is asked for again, a step in
    /// flight is run again (it was not committed, so no worker applied it).
    /// </summary>
    public RunState Recovered()
    {
        if (IsTerminal) return this;
        // the group of the last step this cluster trained (a resumed run's earlier steps have generation -1)
        int world = Cursor.Ledger.LastOrDefault(r => r.Generation >= 0)?.World ?? Spec.StartWorkers;
        return this with
        {
            Phase = Plan is null ? RunPhase.Submitted : Phase,
            Prepared = ImmutableSortedDictionary<int, ShardsReported>.Empty,
            Shards = ShardTable.Empty(Spec.ShardCount), LoadersUp = Array.Empty<string>(), Generation = 0, World = 0,
            InFlight = null, Reports = Reports.Clear(),
            // batches planned ahead went to the old coordinator's generation: the new group's first steps are planned afresh
            PlannedThrough = (-1, -1),
            // who holds the committed state is learnt from the workers' registrations
            Members = ImmutableArray<string>.Empty, Synced = ImmutableHashSet<string>.Empty, HandOver = null, Restoring = null, AwaitProgress = Plan is not null,
            Resuming = Plan is not null, ResumeWorld = Plan is null ? 0 : world,
            Detail = Plan is null ? "recovered: preparing again" : $"recovered at step {Cursor.GlobalStep}: waiting for {world} workers",
        };
    }

    private RunState Resume(List<RunEffect> fx)
    {
        if (World == 0 || World < ResumeWorld)
            return this with { Detail = $"recovered at step {Cursor.GlobalStep}: waiting for workers ({World} of {Math.Max(1, ResumeWorld)})" };
        long g = Cursor.GlobalStep;
        // a checkpoint or validation written from a state nobody vouched for would be wrong: wait for a holder (or the wait's end)
        if (AwaitProgress && !Members.IsEmpty && Lead is null)
            return this with { Detail = $"recovered at step {g}: waiting for a worker holding it to register" };
        var s = this with { Resuming = false, ResumeWorld = 0 };
        switch (Phase)
        {
            case RunPhase.Checkpointing:
                fx.Add(new CheckpointEffect(g, CheckpointTag ?? $"step-{g}", Finishing, Lead));
                return s with { Detail = $"checkpointing step {g} again after a fail-over" };
            case RunPhase.Validating:
                fx.Add(new ValidateEffect(g, Lead));
                return s with { Detail = $"validating step {g} again after a fail-over" };
            default:
                return s.ValidationWanted ? s.ValidateOrContinue(fx) : s.NextStep(fx);
        }
    }

    /// <summary>
    /// What survives a coordinator: phase (Preparing counts as Submitted: shard reports are not journalled), plan,
    /// ledger, the last commit's totals, pending requests, the checkpoint in progress, early-stopping bookkeeping and
    /// the entries left out. Equal for a live state and the replay of its events. Not in it: who is in the cluster
    /// (loaders, worker generation and size, shard owners, reports of the step in flight) and how far batches were
    /// planned ahead for that generation (<see cref="PlannedThrough"/>): a successor hands out newer generations, so
    /// it plans its first step afresh.
    /// </summary>
    public string Durable()
    {
        static string L(IEnumerable<long> xs) => string.Join(',', xs);
        static string D(IEnumerable<double> xs) => string.Join(',', xs.Select(x => x.ToString("R", CultureInfo.InvariantCulture)));
        var phase = Phase == RunPhase.Preparing ? RunPhase.Submitted : Phase;
        var lines = new List<string>
        {
            // how an ended run was finishing does not matter any more (a stop with a checkpoint is not a finish)
            $"run {Spec.RunId} phase {phase} finishing {Finishing && !IsTerminal} validation-wanted {ValidationWanted} pending-checkpoint {PendingCheckpointTag ?? "-"}",
            $"checkpoint {(Phase == RunPhase.Checkpointing ? CheckpointTag : "-")} last-totals {D(LastTotals)}",
            $"last-checkpoint {(LastCheckpoint is { } c ? $"{c.Step} {c.Path} best {c.BestLoss?.ToString("R", CultureInfo.InvariantCulture) ?? "-"} without-improvement {c.ValidationsWithoutImprovement}" : "-")}",
            $"plan {(Plan is null ? "-" : $"{Plan.TotalSteps} steps over {L(Plan.Ids)}")} validation {L(ValidationIds)}",
            $"cursor {Cursor.GlobalStep}",
            $"best-validation {BestValidationLoss?.ToString("R", CultureInfo.InvariantCulture) ?? "-"} without-improvement {ValidationsWithoutImprovement} early-stopped {EarlyStopped}",
            $"problems {string.Join(" | ", Problems)}",
        };
        lines.AddRange(Cursor.Ledger.Select(r => $"  step {r.GlobalStep} epoch {r.Epoch} generation {r.Generation} world {r.World}: {L(r.SampleIds)}"));
        if (IsTerminal) lines.Add($"ended: {Detail}");
        return string.Join('\n', lines);
    }
}
