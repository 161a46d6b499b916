using System.Collections.Immutable;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;
using HiggsCluster.Planning;

namespace HiggsCluster.Coordinator.Run;

/// <summary>
/// What survives a coordinator: the run's spec, stage (<see cref="RunStage"/>: unplanned, training ⇄ checkpointing /
/// validating, finishing, ended), plan, ledger, the last commit's totals, pending requests, the checkpoint in
/// progress, early-stopping bookkeeping and the entries left out. Only journalled events change it, through the one
/// <see cref="Evolve"/> both the live run and the replay use, so a replay equals the live state by construction.
/// Equality is by value (plan and ledger by their ids), which is what tests compare.
/// </summary>
public sealed record RunDurable(
    RunSpec Spec,
    RunStage Stage,
    SamplePlan? Plan,
    ImmutableArray<long> ValidationIds,
    ImmutableArray<string> Problems,
    SampleCursor Cursor,
    ImmutableArray<double> LastTotals,
    string? PendingCheckpointTag,
    bool ValidationWanted,
    double? BestValidationLoss,
    int ValidationsWithoutImprovement,
    CheckpointMark? LastCheckpoint)
{
    /// <summary>The step whose validation gave <see cref="BestValidationLoss"/> (null: not known, e.g. a resume from an older checkpoint).</summary>
    public long? BestValidationStep { get; init; }

    public static RunDurable Start(RunSpec spec) => new(spec, new RunStage.Unplanned(), null, ImmutableArray<long>.Empty, ImmutableArray<string>.Empty,
        SampleCursor.Start, ImmutableArray<double>.Empty, null, false, null, 0, null);

    public RunPhase Phase => Stage.Phase;
    public bool IsTerminal => Stage is RunStage.Ended;
    public bool Finishing => Stage is RunStage.Finishing;
    public bool EarlyStopped => Stage is RunStage.Finishing { EarlyStopped: true } or RunStage.Ended { EarlyStopped: true };
    /// <summary>The tag of the checkpoint being written (null when none is).</summary>
    public string? CheckpointTag => ((Stage as RunStage.Finishing)?.Doing ?? Stage) is RunStage.Checkpointing c ? c.Tag : null;
    public string? EndReason => (Stage as RunStage.Ended)?.Reason;

    /// <summary><paramref name="doing"/> from now on, still on the way to the end when the run is finishing.</summary>
    private RunStage Now(RunStage doing, bool finishing = false) =>
        Stage is RunStage.Finishing f ? f with { Doing = doing } : finishing ? new RunStage.Finishing(doing, false) : doing;

    /// <summary>The run's plan; a mixed dataset's weights come from the spec's data.manifests, as every worker reads them.</summary>
    internal static SamplePlan PlanOf(RunSpec spec, IEnumerable<long> train) =>
        new(train, spec.Seed, spec.MicroBatchSize, spec.GradAccumulation, spec.Ranks, spec.Epochs, spec.MaxSteps > 0 ? spec.MaxSteps : null,
            spec.Options.CorpusWeights);

    public RunDurable Evolve(RunEvent e)
    {
        if (e.RunId != Spec.RunId) throw new ArgumentException($"event of run {e.RunId} applied to run {Spec.RunId}");
        return e switch
        {
            RunEvents.Submitted s => Start(s.Spec),
            RunEvents.Planned p => Planned(PlanOf(Spec, p.TrainIds), p.ValidationIds, p.Problems),
            RunEvents.StepCommitted c => this with
            {
                Cursor = Cursor.Commit(Plan ?? throw new InvalidDataException($"run {e.RunId}: step committed before the plan"),
                    c.Record.GlobalStep, c.Record.Generation, c.Record.World, c.Record.SampleIds),
                LastTotals = c.Totals.ToImmutableArray(), Stage = Now(new RunStage.Training()),
            },
            // asked again (the writer left, or a successor took over) it does not consume a checkpoint requested meanwhile
            RunEvents.CheckpointStarted c => this with
            {
                Stage = Now(new RunStage.Checkpointing(c.Tag), c.Final),
                PendingCheckpointTag = c.Final || Phase == RunPhase.Checkpointing ? PendingCheckpointTag : null,
            },
            RunEvents.CheckpointDone c => this with
            {
                Stage = Now(new RunStage.Training()),
                LastCheckpoint = c.Path is null ? LastCheckpoint : new CheckpointMark(c.GlobalStep, c.Path, BestValidationLoss, ValidationsWithoutImprovement, BestValidationStep),
            },
            // the final validation keeps a request (the run ends anyway); one asked again keeps a request made meanwhile
            RunEvents.ValidationStarted v => this with
            {
                Stage = Now(new RunStage.Validating(), v.Final),
                ValidationWanted = (v.Final || Phase == RunPhase.Validating) && ValidationWanted,
            },
            RunEvents.ValidationDone v => ValidationRecorded(v.GlobalStep, v.Loss),
            RunEvents.CheckpointRequested c => this with { PendingCheckpointTag = c.Tag },
            RunEvents.ValidationRequested => this with { ValidationWanted = true },
            RunEvents.RolledBack r => RolledBack(new CheckpointMark(r.GlobalStep, r.Path, r.BestLoss, r.ValidationsWithoutImprovement, BestStepAt(r))),
            RunEvents.Ended x => this with { Stage = new RunStage.Ended(x.Phase, x.Reason, EarlyStopped) },
            _ => throw new InvalidDataException($"run {e.RunId}: unknown event {e.GetType().Name}"),
        };
    }

    /// <summary>
    /// The best step a roll-back's mark had: the event does not carry it (its journal form predates it), but the mark it
    /// was made from is the last checkpoint, or the run's start.
    /// </summary>
    private long? BestStepAt(RunEvents.RolledBack r) =>
        LastCheckpoint is { } c && c.Step == r.GlobalStep && c.Path == r.Path ? c.BestStep
        : r.GlobalStep == Spec.StartStep && r.Path == Spec.ResumeFrom ? Spec.ResumeBestStep
        : null;

    /// <summary>A validation's loss is a new best (the baseline at step 0 counts, as in the single-process trainer).</summary>
    public bool IsBest(double loss) => BestValidationLoss is null || loss < BestValidationLoss;

    /// <summary>
    /// A resumed run's earlier steps go into the ledger as the plan made them (generation -1: not trained by this
    /// cluster), with the checkpoint's early-stopping bookkeeping; a fresh run first validates the untrained adapter.
    /// </summary>
    private RunDurable Planned(SamplePlan plan, long[] validationIds, string[] problems)
    {
        var cursor = SampleCursor.Start;
        for (long step = 0; step < Spec.StartStep; step++) cursor = cursor.Commit(plan, step, -1, 0, plan.StepSamples(step));
        var s = this with
        {
            Plan = plan, ValidationIds = validationIds.ToImmutableArray(), Stage = new RunStage.Training(), Cursor = cursor,
            Problems = problems.ToImmutableArray(),
            BestValidationLoss = Spec.ResumeBestLoss, ValidationsWithoutImprovement = Spec.ResumeValidationsWithoutImprovement,
            BestValidationStep = Spec.ResumeBestStep,
        };
        return Spec.ValSteps > 0 && validationIds.Length > 0 && Spec.StartStep == 0 ? s with { ValidationWanted = true } : s;
    }

    /// <summary>Best-so-far and early stopping; once patience is used up the run is finishing (straight to the final checkpoint).</summary>
    private RunDurable ValidationRecorded(long step, double loss)
    {
        bool best = IsBest(loss);
        var s = this with
        {
            Stage = Now(new RunStage.Training()), ValidationWanted = false,
            BestValidationLoss = best ? loss : BestValidationLoss, BestValidationStep = best ? step : BestValidationStep,
            ValidationsWithoutImprovement = best ? 0 : ValidationsWithoutImprovement + 1,
        };
        if (!Finishing && Spec.EarlyStoppingPatience > 0 && s.ValidationsWithoutImprovement >= Spec.EarlyStoppingPatience)
            s = s with { Stage = new RunStage.Finishing(new RunStage.Training(), EarlyStopped: true) };
        return s;
    }

    /// <summary>The run as it was after <paramref name="mark"/>'s step: later commits undone.</summary>
    private RunDurable RolledBack(CheckpointMark mark) => this with
    {
        Cursor = Cursor.RollBackTo(mark.Step), LastTotals = ImmutableArray<double>.Empty, Stage = new RunStage.Training(),
        // back at a fresh run's start, the baseline is taken again (as when the run was planned)
        ValidationWanted = mark.Step == 0 && Spec.StartStep == 0 && Spec.ValSteps > 0 && ValidationIds.Length > 0,
        BestValidationLoss = mark.BestLoss, ValidationsWithoutImprovement = mark.ValidationsWithoutImprovement,
        BestValidationStep = mark.BestStep, LastCheckpoint = mark.Path is null ? null : mark,
    };

    public bool Equals(RunDurable? o) => o is not null && (ReferenceEquals(this, o) ||
        Equals(Spec, o.Spec) && Equals(Stage, o.Stage) && SamePlan(Plan, o.Plan) && ValidationIds.SequenceEqual(o.ValidationIds)
        && Problems.SequenceEqual(o.Problems) && Cursor.GlobalStep == o.Cursor.GlobalStep
        && Cursor.Ledger.SequenceEqual(o.Cursor.Ledger, StepRecordComparer.Instance) && LastTotals.SequenceEqual(o.LastTotals)
        && PendingCheckpointTag == o.PendingCheckpointTag && ValidationWanted == o.ValidationWanted && Nullable.Equals(BestValidationLoss, o.BestValidationLoss)
        && ValidationsWithoutImprovement == o.ValidationsWithoutImprovement && BestValidationStep == o.BestValidationStep
        && Equals(LastCheckpoint, o.LastCheckpoint));

    public override int GetHashCode() => HashCode.Combine(Spec.RunId, Stage, Cursor.GlobalStep, ValidationWanted);

    private static bool SamePlan(SamplePlan? a, SamplePlan? b) =>
        ReferenceEquals(a, b) || a is not null && b is not null && a.TotalSteps == b.TotalSteps && a.Ids.SequenceEqual(b.Ids);

    private sealed class StepRecordComparer : IEqualityComparer<StepRecord>
    {
        public static readonly StepRecordComparer Instance = new();
        public bool Equals(StepRecord? a, StepRecord? b) => ReferenceEquals(a, b) || a is not null && b is not null
            && (a.GlobalStep, a.Epoch, a.Generation, a.World) == (b.GlobalStep, b.Epoch, b.Generation, b.World) && a.SampleIds.SequenceEqual(b.SampleIds);
        public int GetHashCode(StepRecord r) => HashCode.Combine(r.GlobalStep, r.Generation);
    }
}
