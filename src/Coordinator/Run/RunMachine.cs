using System.Collections.Immutable;
using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Run;

public abstract record RunCommand;
/// <summary>Membership as the coordinator sees it: loaders Up, and the current worker group (generation, size).</summary>
public sealed record MembershipChanged(IReadOnlyList<string> LoadersUp, long WorkerGeneration, int World) : RunCommand;
public sealed record StepReported(long Generation, long GlobalStep, int Rank, double Loss, ulong LoraChecksum) : RunCommand;
public sealed record CheckpointFinished(long GlobalStep) : RunCommand;
public sealed record ValidationFinished(long GlobalStep, double Loss) : RunCommand;
public sealed record CheckpointRequested(string? Tag) : RunCommand;
public sealed record ValidationRequested : RunCommand;
public sealed record StopRequested(bool Checkpoint) : RunCommand;
public sealed record FailRun(string Reason) : RunCommand;

public abstract record RunEffect;
public sealed record AssignShardsEffect(ShardTable Table) : RunEffect;
/// <summary>Run global step <see cref="GlobalStep"/>: <see cref="MicroBatches"/>[rank][micro] are the sample ids.</summary>
public sealed record StartStepEffect(long Generation, int Epoch, long Step, long GlobalStep, long[][][] MicroBatches) : RunEffect;
public sealed record StepCommittedEffect(StepRecord Record, double MeanLoss) : RunEffect;
public sealed record CheckpointEffect(long GlobalStep, string Tag) : RunEffect;
public sealed record ValidateEffect(long GlobalStep) : RunEffect;
public sealed record RunEndedEffect(RunPhase Phase, string Reason) : RunEffect;
public sealed record CommandRejected(string Reason) : RunEffect;

/// <summary>
/// The run as a pure state machine: <c>Handle(command) → (state', effects)</c>. Submitted → Preparing (shards assigned)
/// → Training ⇄ Checkpointing/Validating → Completed | Failed | Stopped. A step commits only when every rank of the
/// current worker generation reported it with the same LoRA checksum; a membership change abandons the step in
/// flight and plans it again for the new group (same samples, new split).
/// </summary>
public sealed record RunState(
    RunSpec Spec,
    RunPhase Phase,
    SamplePlan Plan,
    SampleCursor Cursor,
    ShardTable Shards,
    IReadOnlyList<string> LoadersUp,
    long Generation,
    int World,
    StartStepEffect? InFlight,
    ImmutableSortedDictionary<int, (double Loss, ulong Checksum)> Reports,
    string? PendingCheckpointTag,
    bool ValidationWanted,
    string Detail)
{
    private long[]? _epochOrder;
    private int _epochOrderFor = -1;

    public static RunState Submit(RunSpec spec)
    {
        if (spec.Epochs <= 0) throw new ArgumentException($"run {spec.RunId}: epochs must be positive, got {spec.Epochs}");
        if (spec.SaveSteps < 0 || spec.ValSteps < 0) throw new ArgumentException($"run {spec.RunId}: save_steps/val_steps must be >= 0");
        var plan = SamplePlan.Create(spec.SampleCount, spec.SamplesPerStep, spec.MicroBatchSize, spec.Seed);
        return new RunState(spec, RunPhase.Submitted, plan, SampleCursor.Start, ShardTable.Empty(spec.ShardCount),
            Array.Empty<string>(), 0, 0, null, ImmutableSortedDictionary<int, (double, ulong)>.Empty, null, false, "submitted");
    }

    public bool IsTerminal => Phase is RunPhase.Completed or RunPhase.Failed or RunPhase.Stopped;

    public (RunState State, IReadOnlyList<RunEffect> Effects) Handle(RunCommand cmd)
    {
        if (IsTerminal) return (this, new RunEffect[] { new CommandRejected($"run {Spec.RunId} is {Phase}: {cmd.GetType().Name} ignored") });
        var fx = new List<RunEffect>();
        var s = cmd switch
        {
            MembershipChanged m => OnMembership(m, fx),
            StepReported r => OnReport(r, fx),
            CheckpointFinished c => Phase == RunPhase.Checkpointing && c.GlobalStep == Cursor.GlobalStep
                ? AfterCheckpoint(fx) : Reject(fx, $"no checkpoint of step {c.GlobalStep} was pending"),
            ValidationFinished v => Phase == RunPhase.Validating && v.GlobalStep == Cursor.GlobalStep
                ? (this with { Phase = RunPhase.Training, ValidationWanted = false, Detail = $"validation loss {v.Loss:G6}" }).NextStep(fx)
                : Reject(fx, $"no validation of step {v.GlobalStep} was pending"),
            CheckpointRequested c => this with { PendingCheckpointTag = c.Tag ?? $"step-{Cursor.GlobalStep}" },
            ValidationRequested => this with { ValidationWanted = true },
            StopRequested st => Stop(st, fx),
            FailRun f => End(RunPhase.Failed, f.Reason, fx),
            _ => Reject(fx, $"unknown command {cmd.GetType().Name}"),
        };
        return (s, fx);
    }

    private RunState Reject(List<RunEffect> fx, string reason) { fx.Add(new CommandRejected(reason)); return this; }

    private RunState End(RunPhase phase, string reason, List<RunEffect> fx)
    {
        fx.Add(new RunEndedEffect(phase, reason));
        return this with { Phase = phase, InFlight = null, Detail = reason };
    }

    private RunState Stop(StopRequested st, List<RunEffect> fx)
    {
        if (st.Checkpoint && Cursor.GlobalStep > 0) fx.Add(new CheckpointEffect(Cursor.GlobalStep, "stop"));
        return End(RunPhase.Stopped, "stopped on request", fx);
    }

    private RunState OnMembership(MembershipChanged m, List<RunEffect> fx)
    {
        var shards = Shards.Rebalance(m.LoadersUp);
        if (shards.Generation != Shards.Generation || Phase == RunPhase.Submitted) fx.Add(new AssignShardsEffect(shards));
        var s = this with { Shards = shards, LoadersUp = m.LoadersUp.ToArray() };
        if (Phase == RunPhase.Submitted) s = s with { Phase = RunPhase.Preparing, Detail = "shards assigned" };
        bool groupChanged = m.WorkerGeneration != Generation || m.World != World;
        s = s with { Generation = m.WorkerGeneration, World = m.World };
        if (groupChanged && s.InFlight is not null)
            s = s with { InFlight = null, Reports = s.Reports.Clear(), Detail = $"step {Cursor.GlobalStep} abandoned: worker group changed" };
        if (s.Phase is RunPhase.Preparing or RunPhase.Training && s.InFlight is null)
            return s.NextStep(fx);
        return s;
    }

    /// <summary>Starts the cursor's step when workers and loaders are there; otherwise waits in the current phase.</summary>
    private RunState NextStep(List<RunEffect> fx)
    {
        if (Cursor.Finished(Plan, Spec.Epochs, Spec.MaxSteps))
        {
            fx.Add(new CheckpointEffect(Cursor.GlobalStep, "final"));
            return End(RunPhase.Completed, $"completed after {Cursor.GlobalStep} steps", fx);
        }
        int needed = Cursor.GlobalStep == 0 ? Math.Max(1, Spec.StartWorkers) : 1;
        if (World < needed || LoadersUp.Count == 0)
            return this with { InFlight = null, Detail = World < needed ? $"waiting for workers ({World} of {needed})" : "waiting for loaders" };
        if (_epochOrderFor != Cursor.Epoch) { _epochOrder = Plan.EpochOrder(Cursor.Epoch); _epochOrderFor = Cursor.Epoch; }
        var samples = Plan.StepSamples(_epochOrder!, Cursor.Step);
        var start = new StartStepEffect(Generation, Cursor.Epoch, Cursor.Step, Cursor.GlobalStep, Plan.SplitAcrossRanks(samples, World));
        fx.Add(start);
        return this with { Phase = RunPhase.Training, InFlight = start, Reports = Reports.Clear(), Detail = $"training step {Cursor.GlobalStep}" };
    }

    private RunState OnReport(StepReported r, List<RunEffect> fx)
    {
        // reports of an abandoned group or step are late echoes, not errors
        if (InFlight is null || r.Generation != Generation || r.GlobalStep != InFlight.GlobalStep) return this;
        if (r.Rank < 0 || r.Rank >= World) return Reject(fx, $"rank {r.Rank} outside the group of {World}");
        if (Reports.ContainsKey(r.Rank)) return this;
        var s = this with { Reports = Reports.Add(r.Rank, (r.Loss, r.LoraChecksum)) };
        if (s.Reports.Count < World) return s;

        var sums = s.Reports.Values.Select(v => v.Checksum).Distinct().ToList();
        if (sums.Count > 1)
            return s.End(RunPhase.Failed, $"LoRA parameters diverged at step {InFlight.GlobalStep}: checksums " +
                string.Join(", ", s.Reports.Select(kv => $"rank {kv.Key}={kv.Value.Checksum:x16}")), fx);

        var ids = InFlight.MicroBatches.SelectMany(rank => rank.SelectMany(m => m)).ToArray();
        var cursor = Cursor.Commit(Plan, InFlight.Epoch, InFlight.Step, Generation, World, ids);
        fx.Add(new StepCommittedEffect(cursor.Ledger[^1], s.Reports.Values.Average(v => v.Loss)));
        s = s with { Cursor = cursor, InFlight = null, Reports = Reports.Clear() };
        long g = cursor.GlobalStep;
        bool finished = cursor.Finished(Plan, Spec.Epochs, Spec.MaxSteps);
        if (!finished && (s.PendingCheckpointTag is not null || (Spec.SaveSteps > 0 && g % Spec.SaveSteps == 0)))
        {
            fx.Add(new CheckpointEffect(g, s.PendingCheckpointTag ?? $"step-{g}"));
            return s with { Phase = RunPhase.Checkpointing, PendingCheckpointTag = null, Detail = $"checkpointing step {g}" };
        }
        return s.ValidateOrContinue(fx);
    }

    private RunState AfterCheckpoint(List<RunEffect> fx) => (this with { Phase = RunPhase.Training }).ValidateOrContinue(fx);

    private RunState ValidateOrContinue(List<RunEffect> fx)
    {
        long g = Cursor.GlobalStep;
        bool finished = Cursor.Finished(Plan, Spec.Epochs, Spec.MaxSteps);
        if (!finished && (ValidationWanted || (Spec.ValSteps > 0 && g % Spec.ValSteps == 0)))
        {
            fx.Add(new ValidateEffect(g));
            return this with { Phase = RunPhase.Validating, ValidationWanted = false, Detail = $"validating step {g}" };
        }
        return (this with { Phase = RunPhase.Training }).NextStep(fx);
    }
}
