using System.Collections.Immutable;
using System.Globalization;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;
using HiggsCluster.Planning;

namespace HiggsCluster.Coordinator.Run;

public abstract record RunCommand;
/// <summary>Membership as the coordinator sees it: loaders Up, and the current worker group (generation, size).</summary>
public sealed record MembershipChanged(IReadOnlyList<string> LoadersUp, long WorkerGeneration, int World) : RunCommand;
/// <summary>A loader read and checked shards: parsed entry ids, those that build into samples, problems.</summary>
public sealed record ShardsReported(int[] ShardIds, long[] ParsedIds, long[] UsableIds, string[] Problems) : RunCommand;
public sealed record StepReported(long Generation, long GlobalStep, int Rank, double[] Stats, ulong LoraChecksum) : RunCommand;
public sealed record CheckpointFinished(long GlobalStep) : RunCommand;
public sealed record ValidationFinished(long GlobalStep, double Loss) : RunCommand;
public sealed record CheckpointRequested(string? Tag) : RunCommand;
public sealed record ValidationRequested : RunCommand;
public sealed record StopRequested(bool Checkpoint) : RunCommand;
public sealed record FailRun(string Reason) : RunCommand;
/// <summary>After a fail-over, stop waiting for the workers of the last committed step's group and go on with those there.</summary>
public sealed record ResumeWaitOver : RunCommand;

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
/// Loaders left while a step was in flight: its micro-batches owned by them (all, when no loader was left) go to the new
/// owners (same plan, same group).
/// </summary>
public sealed record ReplanBatchesEffect(StartStepEffect Step, ShardTable Before, IReadOnlyList<string> Gone) : RunEffect;
public sealed record StepCommittedEffect(StepRecord Record, double[] Totals) : RunEffect;
public sealed record CheckpointEffect(long GlobalStep, string Tag, bool Final) : RunEffect;
public sealed record ValidateEffect(long GlobalStep) : RunEffect;
public sealed record RunEndedEffect(RunPhase Phase, string Reason) : RunEffect;
/// <summary>
/// After a coordinator fail-over: the last committed step again, for workers whose commit was lost with the old
/// coordinator (a worker that already applied it ignores it).
/// </summary>
public sealed record ResendCommitEffect(long GlobalStep, double[] Totals) : RunEffect;
public sealed record CommandRejected(string Reason) : RunEffect;

/// <summary>
/// The run as a pure state machine: <c>Handle(command) → (state', effects)</c>. Submitted → Preparing (shards assigned;
/// loaders read and check them) → Training ⇄ Checkpointing/Validating → Completed (after the final checkpoint) |
/// Failed | Stopped. The plan is the shared <see cref="SamplePlan"/> over the usable training ids, split into
/// train/validation exactly as the single-process trainer does. A step commits only when every rank of the current
/// worker group reported it with the same LoRA checksum; a membership change abandons the step in flight and plans it
/// again for the new group (same samples, new split over workers).
/// </summary>
public sealed partial record RunState(
    RunSpec Spec,
    RunPhase Phase,
    SamplePlan? Plan,
    ImmutableSortedDictionary<int, ShardsReported> Prepared,
    long[] ValidationIds,
    SampleCursor Cursor,
    ShardTable Shards,
    IReadOnlyList<string> LoadersUp,
    long Generation,
    int World,
    StartStepEffect? InFlight,
    ImmutableSortedDictionary<int, (double[] Stats, ulong Checksum)> Reports,
    string? PendingCheckpointTag,
    bool ValidationWanted,
    bool Finishing,
    string Detail,
    double[] LastTotals,
    string? CheckpointTag,
    bool Resuming,
    int ResumeWorld)
{
    public string[] Problems { get; init; } = Array.Empty<string>();
    public double? BestValidationLoss { get; init; }
    public int ValidationsWithoutImprovement { get; init; }
    public bool EarlyStopped { get; init; }

    /// <summary>Batches were sent to loaders through this step for this worker generation (look-ahead of one step).</summary>
    public (long Generation, long Step) PlannedThrough { get; init; } = (-1, -1);

    public static RunState Submit(RunSpec spec)
    {
        string Bad(string what) => $"run {spec.RunId}: {what}";
        if (string.IsNullOrWhiteSpace(spec.RunId)) throw new ArgumentException("run id is empty");
        if (spec.Epochs <= 0 && spec.MaxSteps <= 0) throw new ArgumentException(Bad($"epochs must be positive (or max steps set), got {spec.Epochs}"));
        if (spec.Ranks <= 0 || spec.MicroBatchSize <= 0 || spec.GradAccumulation <= 0) throw new ArgumentException(Bad("ranks, micro-batch size and accumulation must be positive"));
        if (spec.SaveSteps < 0 || spec.ValSteps < 0) throw new ArgumentException(Bad("save_steps/val_steps must be >= 0"));
        if (spec.StartWorkers <= 0) throw new ArgumentException(Bad($"start workers must be positive, got {spec.StartWorkers}"));
        return new RunState(spec, RunPhase.Submitted, null, ImmutableSortedDictionary<int, ShardsReported>.Empty, Array.Empty<long>(),
            SampleCursor.Start, ShardTable.Empty(spec.ShardCount), Array.Empty<string>(), 0, 0, null,
            ImmutableSortedDictionary<int, (double[], ulong)>.Empty, null, false, false, "submitted", Array.Empty<double>(), null, false, 0);
    }

    public bool IsTerminal => Phase is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped;
    public int Epoch => Plan is null ? 0 : Plan.EpochOf(Math.Max(0, Cursor.GlobalStep - (Cursor.Finished(Plan) ? 1 : 0)));

    public (RunState State, IReadOnlyList<RunEffect> Effects) Handle(RunCommand cmd)
    {
        if (IsTerminal) return (this, new RunEffect[] { new CommandRejected($"run {Spec.RunId} is {Phase}: {cmd.GetType().Name} ignored") });
        var fx = new List<RunEffect>();
        var s = cmd switch
        {
            MembershipChanged m => OnMembership(m, fx),
            ShardsReported r => OnShards(r, fx),
            StepReported r => OnReport(r, fx),
            CheckpointFinished c => Phase == RunPhase.Checkpointing && c.GlobalStep == Cursor.GlobalStep
                ? AfterCheckpoint(fx) : Reject(fx, $"no checkpoint of step {c.GlobalStep} was pending"),
            ValidationFinished v => Phase == RunPhase.Validating && v.GlobalStep == Cursor.GlobalStep
                ? AfterValidation(v, fx)
                : Reject(fx, $"no validation of step {v.GlobalStep} was pending"),
            CheckpointRequested c => this with { PendingCheckpointTag = c.Tag ?? $"step-{Cursor.GlobalStep}" },
            ValidationRequested => this with { ValidationWanted = true },
            StopRequested st => Stop(st, fx),
            FailRun f => End(RunPhase.Failed, f.Reason, fx),
            ResumeWaitOver => Resuming ? (this with { ResumeWorld = 0 }).Resume(fx) : this,
            _ => Reject(fx, $"unknown command {cmd.GetType().Name}"),
        };
        return (s, fx);
    }

    /// <summary>Best-so-far and early stopping as the single-process trainer keeps them (the baseline at step 0 counts).</summary>
    private RunState AfterValidation(ValidationFinished v, List<RunEffect> fx) => ValidationRecorded(v.Loss).NextStep(fx);

    /// <summary>
    /// A validation's loss taken into the early-stopping bookkeeping; once patience is used up the run is finishing
    /// (it just validated, so it goes straight to the final checkpoint). Shared by the live machine and the replay.
    /// </summary>
    private RunState ValidationRecorded(double loss)
    {
        bool best = BestValidationLoss is null || loss < BestValidationLoss;
        var s = this with
        {
            Phase = RunPhase.Training, ValidationWanted = false,
            Detail = $"validation loss {loss.ToString("G6", CultureInfo.InvariantCulture)}" + (best ? " (best so far)" : ""),
            BestValidationLoss = best ? loss : BestValidationLoss,
            ValidationsWithoutImprovement = best ? 0 : ValidationsWithoutImprovement + 1,
        };
        if (!Finishing && Spec.EarlyStoppingPatience > 0 && s.ValidationsWithoutImprovement >= Spec.EarlyStoppingPatience)
            s = s with { Finishing = true, EarlyStopped = true };
        return s;
    }

    private RunState Reject(List<RunEffect> fx, string reason) { fx.Add(new CommandRejected(reason)); return this; }

    private RunState End(RunPhase phase, string reason, List<RunEffect> fx)
    {
        fx.Add(new RunEndedEffect(phase, reason));
        return this with { Phase = phase, InFlight = null, Detail = reason };
    }

    private RunState Stop(StopRequested st, List<RunEffect> fx)
    {
        if (st.Checkpoint && Cursor.GlobalStep > 0 && World > 0) fx.Add(new CheckpointEffect(Cursor.GlobalStep, "stop", Final: true));
        return End(RunPhase.Stopped, "stopped on request", fx);
    }

    private RunState OnMembership(MembershipChanged m, List<RunEffect> fx)
    {
        var shards = Shards.Rebalance(m.LoadersUp);
        if (shards.Generation != Shards.Generation) fx.Add(new AssignShardsEffect(shards));
        var s = this with { Shards = shards, LoadersUp = m.LoadersUp.ToArray() };
        if (Phase == RunPhase.Submitted && !shards.Owner.IsEmpty) s = s with { Phase = RunPhase.Preparing, Detail = "preparing shards" };
        bool groupChanged = m.WorkerGeneration != Generation || m.World != World;
        s = s with { Generation = m.WorkerGeneration, World = m.World };
        // a worker may have missed the last commit when the coordinator that sent it died: every group hears it again
        if (groupChanged && m.World > 0 && s.LastTotals.Length > 0 && !s.Cursor.Ledger.IsEmpty)
            fx.Add(new ResendCommitEffect(s.Cursor.Ledger[^1].GlobalStep, s.LastTotals));
        if (groupChanged && s.InFlight is not null)
            s = s with { InFlight = null, Reports = s.Reports.Clear(), Detail = $"step {Cursor.GlobalStep} abandoned: worker group changed" };
        var gone = LoadersUp.Except(m.LoadersUp, StringComparer.Ordinal).ToList();
        if (s.InFlight is not null && !shards.Owner.IsEmpty && (gone.Count > 0 || Shards.Owner.IsEmpty))
            fx.Add(new ReplanBatchesEffect(s.InFlight, Shards, gone));
        if (s.Resuming) return s.Resume(fx);
        if (s.Phase == RunPhase.Training && s.InFlight is null) return s.ValidationWanted ? s.ValidateOrContinue(fx) : s.NextStep(fx);
        // the worker writing the checkpoint (or validating) may be the one that left, e.g. killed mid-write: the new
        // group's lead does it again (writing the same checkpoint twice is harmless; a late second answer is stale)
        if (groupChanged && m.World > 0 && s.Phase == RunPhase.Checkpointing)
            fx.Add(new CheckpointEffect(Cursor.GlobalStep, s.CheckpointTag ?? $"step-{Cursor.GlobalStep}", s.Finishing));
        if (groupChanged && m.World > 0 && s.Phase == RunPhase.Validating)
            fx.Add(new ValidateEffect(Cursor.GlobalStep));
        return s;
    }

    private RunState OnShards(ShardsReported r, List<RunEffect> fx)
    {
        // results are facts about the data, whoever computed them: keep them even if the shard has moved since
        var prepared = Prepared;
        foreach (var id in r.ShardIds)
        {
            if (id < 0 || id >= Spec.ShardCount) return Reject(fx, $"shard {id} outside 0..{Spec.ShardCount - 1}");
            prepared = prepared.SetItem(id, r);
        }
        var s = this with { Prepared = prepared };
        if (Phase != RunPhase.Preparing || prepared.Count < Spec.ShardCount) return s;

        var reports = prepared.Values.Distinct().ToList();
        var parsed = reports.SelectMany(x => x.ParsedIds).Distinct().Order().ToList();
        var usable = reports.SelectMany(x => x.UsableIds).ToHashSet();
        var problems = reports.SelectMany(x => x.Problems).Distinct().ToArray();
        List<long> train, val;
        if (Spec.SeparateValidation)
        {
            train = parsed.Where(id => id < DataSplit.ValidationIdBase).ToList();
            val = parsed.Where(id => id >= DataSplit.ValidationIdBase).ToList();
        }
        else (train, val) = DataSplit.Split(parsed, Spec.Seed, Spec.ValidationFraction);
        train = train.Where(usable.Contains).ToList();
        val = val.Where(usable.Contains).ToList();
        if (train.Count == 0) return s.End(RunPhase.Failed, $"no usable training sample ({problems.Length} problems; first: {problems.FirstOrDefault() ?? "none"})", fx);
        var plan = PlanOf(Spec, train);
        if (Spec.StartStep < 0 || Spec.StartStep > plan.TotalSteps)
            return s.End(RunPhase.Failed, $"resume step {Spec.StartStep} is outside this run's {plan.TotalSteps} steps", fx);
        fx.Add(new RunPlannedEffect(train.ToArray(), val.ToArray(), problems));
        s = s.WithPlan(plan, val.ToArray(), problems);
        return s.ValidateOrContinue(fx);
    }

    /// <summary>
    /// The plan is fixed (shared by the live machine and the replay). A resumed run's earlier steps go into the ledger as
    /// the plan made them (generation -1: not trained by this cluster), with the checkpoint's early-stopping bookkeeping;
    /// a fresh run first validates the untrained adapter (the baseline, as in the single-process trainer).
    /// </summary>
    private RunState WithPlan(SamplePlan plan, long[] validationIds, string[] problems)
    {
        var cursor = SampleCursor.Start;
        for (long step = 0; step < Spec.StartStep; step++) cursor = cursor.Commit(plan, step, -1, 0, plan.StepSamples(step));
        var s = this with
        {
            Plan = plan, ValidationIds = validationIds, Phase = RunPhase.Training, Cursor = cursor, Problems = problems,
            BestValidationLoss = Spec.ResumeBestLoss, ValidationsWithoutImprovement = Spec.ResumeValidationsWithoutImprovement,
            Detail = $"planned: {plan.Ids.Count} training, {validationIds.Length} validation samples",
        };
        return Spec.ValSteps > 0 && validationIds.Length > 0 && Spec.StartStep == 0 ? s with { ValidationWanted = true } : s;
    }

    /// <summary>Starts the cursor's step when workers and loaders are there; otherwise waits in the current phase.</summary>
    private RunState NextStep(List<RunEffect> fx)
    {
        var plan = Plan!;
        // finishing (early stop, or waiting for a worker to write the final checkpoint) never starts another step
        if (Cursor.Finished(plan) || Finishing) return Finish(fx);
        int needed = Cursor.GlobalStep <= Spec.StartStep ? Spec.StartWorkers : 1;
        if (World < needed || LoadersUp.Count == 0)
            return this with { InFlight = null, Detail = World < needed ? $"waiting for workers ({World} of {needed})" : "waiting for loaders" };
        long step = Cursor.GlobalStep;
        long[][][] Cut(long s) => Enumerable.Range(0, World).Select(w => plan.WorkerMicroBatches(s, w, World).ToArray()).ToArray();
        bool planned = PlannedThrough.Generation == Generation && PlannedThrough.Step >= step;
        bool lookAhead = step + 1 < plan.TotalSteps;
        var start = new StartStepEffect(Generation, plan.EpochOf(step), step, Cut(step), planned,
            lookAhead ? Cut(step + 1) : null, lookAhead ? plan.EpochOf(step + 1) : 0);
        fx.Add(start);
        return this with
        {
            Phase = RunPhase.Training, InFlight = start, Reports = Reports.Clear(), Detail = $"training step {step + 1} of {plan.TotalSteps}",
            PlannedThrough = (Generation, lookAhead ? step + 1 : step),
        };
    }

    /// <summary>The run ends with a final validation (when there is a validation set) and a final checkpoint.</summary>
    private RunState Finish(List<RunEffect> fx)
    {
        if (ValidationIds.Length > 0 && !Finishing && Phase != RunPhase.Validating)
        {
            fx.Add(new ValidateEffect(Cursor.GlobalStep));
            return this with { Phase = RunPhase.Validating, Finishing = true, InFlight = null, Detail = $"final validation at step {Cursor.GlobalStep}" };
        }
        if (World == 0) return this with { Finishing = true, Detail = "waiting for a worker to write the final checkpoint" };
        fx.Add(new CheckpointEffect(Cursor.GlobalStep, "final", Final: true));
        return this with { Phase = RunPhase.Checkpointing, Finishing = true, InFlight = null, CheckpointTag = "final", Detail = $"writing the final checkpoint of step {Cursor.GlobalStep}" };
    }

    private RunState OnReport(StepReported r, List<RunEffect> fx)
    {
        // reports of an abandoned group or step are late echoes, not errors
        if (InFlight is null || r.Generation != Generation || r.GlobalStep != InFlight.GlobalStep) return this;
        if (r.Rank < 0 || r.Rank >= World) return Reject(fx, $"rank {r.Rank} outside the group of {World}");
        if (Reports.ContainsKey(r.Rank)) return this;
        var s = this with { Reports = Reports.Add(r.Rank, (r.Stats, r.LoraChecksum)) };
        if (s.Reports.Count < World) return s;

        var sums = s.Reports.Values.Select(v => v.Checksum).Distinct().ToList();
        if (sums.Count > 1)
            return s.End(RunPhase.Failed, $"LoRA parameters diverged at step {InFlight.GlobalStep}: checksums " +
                string.Join(", ", s.Reports.Select(kv => $"rank {kv.Key}={kv.Value.Checksum:x16}")), fx);

        double[] totals;
        try { totals = StepStats.Sum(s.Reports.Values.Select(v => v.Stats)); }
        catch (ArgumentException e) { return s.End(RunPhase.Failed, $"step {InFlight.GlobalStep}: {e.Message}", fx); }
        var ids = InFlight.MicroBatches.SelectMany(w => w.SelectMany(m => m)).ToArray();
        var cursor = Cursor.Commit(Plan!, InFlight.GlobalStep, Generation, World, ids);
        fx.Add(new StepCommittedEffect(cursor.Ledger[^1], totals));
        s = s with { Cursor = cursor, InFlight = null, Reports = Reports.Clear(), LastTotals = totals };
        long g = cursor.GlobalStep;
        if (!cursor.Finished(Plan!) && (s.PendingCheckpointTag is not null || (Spec.SaveSteps > 0 && g % Spec.SaveSteps == 0)))
        {
            var tag = s.PendingCheckpointTag ?? $"step-{g}";
            fx.Add(new CheckpointEffect(g, tag, Final: false));
            return s with { Phase = RunPhase.Checkpointing, PendingCheckpointTag = null, CheckpointTag = tag, Detail = $"checkpointing step {g}" };
        }
        return s.ValidateOrContinue(fx);
    }

    private RunState AfterCheckpoint(List<RunEffect> fx) => Finishing
        ? End(RunPhase.Completed, $"completed after {Cursor.GlobalStep} steps" + (EarlyStopped ? " (early stop)" : ""), fx)
        : (this with { Phase = RunPhase.Training }).ValidateOrContinue(fx);

    private RunState ValidateOrContinue(List<RunEffect> fx)
    {
        long g = Cursor.GlobalStep;
        bool finished = Cursor.Finished(Plan!);
        if (!finished && ValidationIds.Length > 0 && World > 0 && (ValidationWanted || (Spec.ValSteps > 0 && g > 0 && g % Spec.ValSteps == 0)))
        {
            fx.Add(new ValidateEffect(g));
            return this with { Phase = RunPhase.Validating, ValidationWanted = false, Detail = $"validating step {g}" };
        }
        return (this with { Phase = RunPhase.Training }).NextStep(fx);
    }
}
