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

    /// <summary>The current worker group by rank (empty when membership carries no identities).</summary>
    public ImmutableArray<string> Members { get; init; } = ImmutableArray<string>.Empty;
    /// <summary>Members known to hold the committed state of <c>Cursor.GlobalStep</c> steps (took part in the last commit, or installed it).</summary>
    public ImmutableHashSet<string> Synced { get; init; } = ImmutableHashSet<string>.Empty;
    /// <summary>The state hand-over the next step waits for.</summary>
    public HandOverEffect? HandOver { get; init; }

    /// <summary>
    /// Who holds the committed state is not known (a coordinator took the run over from the journal): workers say it when
    /// they register, and the run waits for that rather than failing for want of a lead.
    /// </summary>
    public bool AwaitProgress { get; init; }

    /// <summary>The newest checkpoint a worker published for this run, with the early-stopping bookkeeping it holds.</summary>
    public CheckpointMark? LastCheckpoint { get; init; }
    /// <summary>A roll-back in progress: no step starts until every member loaded the checkpoint (or was handed it).</summary>
    public RestoreEffect? Restoring { get; init; }

    /// <summary>The worker that checkpoints and validates: the first member holding the committed state.</summary>
    public string? Lead => Members.FirstOrDefault(Synced.Contains);

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
                ? (this with { LastCheckpoint = Marked(c.GlobalStep, c.Path) }).AfterCheckpoint(fx)
                : Reject(fx, $"no checkpoint of step {c.GlobalStep} was pending"),
            ValidationFinished v => Phase == RunPhase.Validating && v.GlobalStep == Cursor.GlobalStep
                ? AfterValidation(v, fx)
                : Reject(fx, $"no validation of step {v.GlobalStep} was pending"),
            CheckpointRequested c => this with { PendingCheckpointTag = c.Tag ?? $"step-{Cursor.GlobalStep}" },
            ValidationRequested => this with { ValidationWanted = true },
            StopRequested st => Stop(st, fx),
            FailRun f => End(RunPhase.Failed, f.Reason, fx),
            WorkerProgress p => OnProgress(p.WorkerId, p.AppliedSteps, fx),
            WorkerInstalled i => OnProgress(i.WorkerId, i.GlobalStep, fx),
            HandOverRefused f => OnHandOverFailed(f, fx),
            ResumeWaitOver => WaitOver(fx),
            HandOverOverdue h => HandOver is { } t && t.Generation == h.Generation && t.GlobalStep == h.GlobalStep && Generation == h.Generation
                ? HandOverAgain(fx) : this,
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
        if (m.Workers is not null)
        {
            var members = m.Workers.ToImmutableArray();
            // a member that left missed commits; before this run's first commit every member holds the same state (the
            // initial adapter, or the checkpoint a resumed run starts from)
            // (one change made after the copy, as in the rewrite: a member that left keeps what it holds until the next commit)
            var synced = Cursor.GlobalStep <= Spec.StartStep && !AwaitProgress ? Synced.Union(members) : Synced;
            s = s with { Members = members, Synced = synced, HandOver = s.HandOver is { } h && h.Generation == m.WorkerGeneration ? h : null };
        }
        if (groupChanged && s.InFlight is not null)
            s = s with { InFlight = null, Reports = s.Reports.Clear(), Detail = $"step {Cursor.GlobalStep} abandoned: worker group changed" };
        if (groupChanged && s.Restoring is { } restoring && m.Workers is not null)
        {
            // members that joined (or had not loaded it yet) load the checkpoint too: loading it again is harmless
            var missing = s.Members.Where(w => !s.Synced.Contains(w)).ToArray();
            if (missing.Length > 0)
            {
                var again = restoring with { Generation = m.WorkerGeneration, Workers = missing, RollBack = false };
                fx.Add(again);
                s = s with { Restoring = again };
            }
            else if (!s.Members.IsEmpty)
                return (s with { Restoring = null }).ValidateOrContinue(fx); // the one still loading it left: as in OnProgress
        }
        var gone = LoadersUp.Except(m.LoadersUp, StringComparer.Ordinal).ToList();
        if (s.InFlight is not null && !shards.Owner.IsEmpty && (gone.Count > 0 || Shards.Owner.IsEmpty))
            fx.Add(new ReplanBatchesEffect(s.InFlight, gone, LostByOwners(s.InFlight, Shards, gone)));
        if (s.Resuming) return s.Resume(fx);
        if (s.Phase == RunPhase.Training && s.InFlight is null) return s.ValidationWanted ? s.ValidateOrContinue(fx) : s.NextStep(fx);
        // the worker writing the checkpoint (or validating) may be the one that left, e.g. killed mid-write: the new
        // group's lead does it again (writing the same checkpoint twice is harmless; a late second answer is stale)
        if (groupChanged && m.World > 0 && s.Phase == RunPhase.Checkpointing)
            fx.Add(new CheckpointEffect(Cursor.GlobalStep, s.CheckpointTag ?? $"step-{Cursor.GlobalStep}", s.Finishing, s.Lead));
        if (groupChanged && m.World > 0 && s.Phase == RunPhase.Validating)
            fx.Add(new ValidateEffect(Cursor.GlobalStep, s.Lead));
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
            train = parsed.Where(id => !DataMix.IsSeparateValidationId(id)).ToList();
            val = parsed.Where(DataMix.IsSeparateValidationId).ToList();
        }
        else (train, val) = DataSplit.Split(parsed, Spec.Seed, Spec.ValidationFraction);
        train = train.Where(usable.Contains).ToList();
        val = val.Where(usable.Contains).ToList();
        if (train.Count == 0) return s.End(RunPhase.Failed, $"no usable training sample ({problems.Length} problems; first: {problems.FirstOrDefault() ?? "none"})", fx);
        if (Spec.Options.CorpusWeights is { } weights)
            for (int c = 0; c < weights.Count; c++)
                if (!train.Any(id => DataMix.CorpusOf(id) == c))
                    return s.End(RunPhase.Failed, $"data.manifests[{c}]: no usable training sample, so its weight cannot be drawn ({problems.Length} problems; first: {problems.FirstOrDefault() ?? "none"})", fx);
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
        if (Restoring is { } r) return this with { InFlight = null, Detail = $"waiting for the workers to load the checkpoint of step {r.GlobalStep}" };
        // finishing (early stop, or waiting for a worker to write the final checkpoint) never starts another step
        if (Cursor.Finished(plan) || Finishing) return Finish(fx);
        int needed = Cursor.GlobalStep <= Spec.StartStep ? Spec.StartWorkers : 1;
        if (World < needed || LoadersUp.Count == 0)
            return this with { InFlight = null, Detail = World < needed ? $"waiting for workers ({World} of {needed})" : "waiting for loaders" };
        if (HandOverFirst(fx) is { } healing) return healing;
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
            if (World > 0 && NoLead(fx) is { } noLead) return noLead;
            fx.Add(new ValidateEffect(Cursor.GlobalStep, Lead));
            return this with { Phase = RunPhase.Validating, Finishing = true, InFlight = null, Detail = $"final validation at step {Cursor.GlobalStep}" };
        }
        if (World == 0) return this with { Finishing = true, Detail = "waiting for a worker to write the final checkpoint" };
        if (NoLead(fx) is { } failed) return failed;
        fx.Add(new CheckpointEffect(Cursor.GlobalStep, "final", Final: true, Lead));
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
        // every member reported: each applies the commit, so each holds the new state
        s = s with { Cursor = cursor, InFlight = null, Reports = Reports.Clear(), LastTotals = totals, Synced = Members.ToImmutableHashSet(), HandOver = null, AwaitProgress = false };
        long g = cursor.GlobalStep;
        if (!cursor.Finished(Plan!) && (s.PendingCheckpointTag is not null || (Spec.SaveSteps > 0 && g % Spec.SaveSteps == 0)))
        {
            var tag = s.PendingCheckpointTag ?? $"step-{g}";
            fx.Add(new CheckpointEffect(g, tag, Final: false, s.Lead));
            return s with { Phase = RunPhase.Checkpointing, PendingCheckpointTag = null, CheckpointTag = tag, Detail = $"checkpointing step {g}" };
        }
        return s.ValidateOrContinue(fx);
    }

    private RunState AfterCheckpoint(List<RunEffect> fx) => Finishing
        ? End(RunPhase.Completed, $"completed after {Cursor.GlobalStep} steps" + (EarlyStopped ? " (early stop)" : ""), fx)
        : (this with { Phase = RunPhase.Training }).ValidateOrContinue(fx);

    private RunState ValidateOrContinue(List<RunEffect> fx)
    {
        if (Restoring is not null) return NextStep(fx);
        long g = Cursor.GlobalStep;
        bool finished = Cursor.Finished(Plan!);
        if (!finished && ValidationIds.Length > 0 && World > 0 && (ValidationWanted || (Spec.ValSteps > 0 && g > 0 && g % Spec.ValSteps == 0)))
        {
            if (NoLead(fx) is { } failed) return failed;
            fx.Add(new ValidateEffect(g, Lead));
            return this with { Phase = RunPhase.Validating, ValidationWanted = false, Detail = $"validating step {g}" };
        }
        return (this with { Phase = RunPhase.Training }).NextStep(fx);
    }

    /// <summary>
    /// Members that joined after the last commit get the committed state from a member holding it before any step
    /// starts (a fresh process would otherwise train from the initial adapter). Returns null when the group is ready.
    /// </summary>
    private RunState? HandOverFirst(List<RunEffect> fx)
    {
        var stale = Members.Where(w => !Synced.Contains(w)).ToArray();
        if (stale.Length == 0) return null;
        long g = Cursor.GlobalStep;
        if (HandOver is { } h && h.Generation == Generation && h.GlobalStep == g)
            return this with { InFlight = null, Detail = $"waiting for {string.Join(", ", stale)} to install the state of step {g}" };
        if (NoLead(fx) is { } failed) return failed;
        var t = new HandOverEffect(Generation, g, Lead!, stale);
        fx.Add(t);
        return this with { InFlight = null, HandOver = t, Detail = $"handing the state of step {g} from {t.From} to {string.Join(", ", stale)}" };
    }

    /// <summary>Members are there but none holds the committed state: nothing in the cluster can continue the run.</summary>
    private RunState? NoLead(List<RunEffect> fx) => Members.IsEmpty || Lead is not null ? null
        : AwaitProgress ? this with { InFlight = null, Detail = $"waiting for a worker holding step {Cursor.GlobalStep} to register" }
        : End(RunPhase.Failed, $"no live worker holds the committed state of step {Cursor.GlobalStep} (every worker that applied it is gone); resume from the last checkpoint", fx);

    private RunState OnProgress(string worker, long applied, List<RunEffect> fx)
    {
        if (applied != Cursor.GlobalStep || !Members.Contains(worker) || Synced.Contains(worker)) return this;
        var s = this with { Synced = Synced.Add(worker) };
        if (Restoring is { } r)
        {
            if (s.Members.Any(w => !s.Synced.Contains(w))) return s;
            // as after the checkpoint was written: the validation due at its step comes next (the bookkeeping predates it)
            s = s with { Restoring = null, Detail = $"every worker holds the checkpoint of step {r.GlobalStep}" };
            return s.Phase == RunPhase.Training && s.InFlight is null ? s.ValidateOrContinue(fx) : s;
        }
        if (AwaitProgress)
        {
            // the first worker known to hold the state after a take-over: the run can go on (others get it handed over)
            s = s with { AwaitProgress = false };
            if (s.Resuming) return s.Resume(fx);
            return s.Phase == RunPhase.Training && s.InFlight is null && !s.Resuming && !s.Members.IsEmpty
                ? (s.ValidationWanted ? s.ValidateOrContinue(fx) : s.NextStep(fx)) : s;
        }
        if (HandOver is null || s.Members.Any(w => !s.Synced.Contains(w))) return s;
        s = s with { HandOver = null, Detail = $"state of step {Cursor.GlobalStep} installed on every worker" };
        return s.Phase == RunPhase.Training && s.InFlight is null ? s.NextStep(fx) : s;
    }

    private RunState WaitOver(List<RunEffect> fx)
    {
        var s = this with { ResumeWorld = 0 };
        bool adopted = s.AwaitProgress && !s.Members.IsEmpty && s.Lead is null;
        if (adopted) s = s.NobodyHoldsTheState(fx);
        if (s.Restoring is not null) return s;
        if (Resuming) return s.Resume(fx);
        return adopted && s.Phase == RunPhase.Training && s.InFlight is null ? (s.ValidationWanted ? s.ValidateOrContinue(fx) : s.NextStep(fx)) : s;
    }

    /// <summary>
    /// No worker that applied the last commit came back after a take-over (the whole cluster restarted), so nothing
    /// holds the committed state in memory. Before this cluster's first commit every worker holds the start state (the
    /// initial adapter, or the checkpoint the run resumed from): the run goes on. After it, training the members on
    /// would silently restart from the wrong state: the run rolls back to its last checkpoint (or its start) instead,
    /// every member loads it, and the steps after it are trained again from the same plan.
    /// </summary>
    private RunState NobodyHoldsTheState(List<RunEffect> fx)
    {
        long g = Cursor.GlobalStep;
        if (g <= Spec.StartStep)
            return this with
            {
                AwaitProgress = false, Synced = Members.ToImmutableHashSet(),
                Detail = $"no worker that held step {g} came back: every worker holds the run's start state",
            };
        var mark = LastCheckpoint is { } c && c.Step >= Spec.StartStep ? c
            : new CheckpointMark(Spec.StartStep, Spec.ResumeFrom, Spec.ResumeBestLoss, Spec.ResumeValidationsWithoutImprovement);
        var restore = new RestoreEffect(Generation, mark.Step, mark.Path, Members.ToArray(), RollBack: true);
        fx.Add(restore);
        return RolledBack(mark) with
        {
            Restoring = restore, Synced = ImmutableHashSet<string>.Empty, AwaitProgress = false, Resuming = false, ResumeWorld = 0, HandOver = null,
            Detail = $"no worker holding step {g} came back (the whole cluster was lost): rolled back to " +
                (mark.Path is null ? "the run's start" : $"the checkpoint of step {mark.Step} ({mark.Path})"),
        };
    }

    /// <summary>The run as it was after <paramref name="mark"/>'s step: later commits undone (shared by the live machine and the replay).</summary>
    internal RunState RolledBack(CheckpointMark mark) => this with
    {
        Cursor = Cursor.RollBackTo(mark.Step), LastTotals = Array.Empty<double>(), Phase = RunPhase.Training, InFlight = null,
        Reports = Reports.Clear(), Finishing = false, EarlyStopped = false, CheckpointTag = null,
        // back at a fresh run's start, the baseline is taken again (as when the run was planned)
        ValidationWanted = mark.Step == 0 && Spec.StartStep == 0 && Spec.ValSteps > 0 && ValidationIds.Length > 0,
        BestValidationLoss = mark.BestLoss, ValidationsWithoutImprovement = mark.ValidationsWithoutImprovement,
        PlannedThrough = (-1, -1), LastCheckpoint = mark.Path is null ? null : mark,
    };

    private CheckpointMark? Marked(long step, string? path) =>
        path is null ? LastCheckpoint : new CheckpointMark(step, path, BestValidationLoss, ValidationsWithoutImprovement);

    /// <summary>
    /// A hand-over that did not complete (its chunks lost in transit, or a newcomer that never answered) is asked for again
    /// from a member holding the state, for the members still without it; installing the same state twice is harmless.
    /// </summary>
    private RunState HandOverAgain(List<RunEffect> fx)
    {
        var stale = Members.Where(w => !Synced.Contains(w)).ToArray();
        if (stale.Length == 0) return this with { HandOver = null };
        if (NoLead(fx) is { } failed) return failed;
        var t = new HandOverEffect(Generation, Cursor.GlobalStep, Lead!, stale);
        fx.Add(t);
        return this with { HandOver = t, Detail = $"handing the state of step {t.GlobalStep} from {t.From} to {string.Join(", ", stale)} again (the last hand-over did not complete)" };
    }

    private RunState OnHandOverFailed(HandOverRefused f, List<RunEffect> fx)
    {
        if (HandOver is null || HandOver.From != f.WorkerId || f.GlobalStep != Cursor.GlobalStep) return this;
        // the source does not hold the state it was thought to (or not yet: after a take-over a worker may still be
        // finishing the commit sent again): pick another; when none is left, wait for a worker to register holding it
        var s = this with { Synced = Synced.Remove(f.WorkerId), HandOver = null, Detail = $"state hand-over from {f.WorkerId} failed: {f.Reason}" };
        if (s.Lead is null) s = s with { AwaitProgress = true };
        return s.Phase == RunPhase.Training && s.InFlight is null ? s.NextStep(fx) : s;
    }

    /// <summary>The old machine's idea of a lost batch: its shard's owner in the table before the change is gone (or none).</summary>
    private static HashSet<HiggsCluster.Coordinator.Planning.SentBatch> LostByOwners(StartStepEffect st, HiggsCluster.Coordinator.Planning.ShardTable before, List<string> gone)
    {
        var lost = new HashSet<HiggsCluster.Coordinator.Planning.SentBatch>();
        void Add(long step, long[][][] cut)
        {
            for (int rank = 0; rank < cut.Length; rank++)
                for (int micro = 0; micro < cut[rank].Length; micro++)
                    if (cut[rank][micro] is { Length: > 0 } ids && (before.OwnerOfSample(ids[0]) is not { } was || gone.Contains(was)))
                        lost.Add(new(step, rank, micro));
        }
        Add(st.GlobalStep, st.MicroBatches);
        if (st.Next is { } next) Add(st.GlobalStep + 1, next);
        return lost;
    }
}
