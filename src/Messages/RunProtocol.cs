using System.Text.Json.Serialization;
using HiggsCluster.Planning;

namespace HiggsCluster.Messages;

public enum RunPhase { Submitted, Preparing, Training, Validating, Checkpointing, Completed, Failed, Stopped }

/// <summary>
/// A submitted run. <see cref="Options"/> is the training configuration, validated once where the spec was made (paths
/// absolute), from which every node builds its part: loaders the data path, workers the model and optimizer, the
/// coordinator its plan. The plan's numbers below are read from it, never stored beside it: the global batch is
/// <see cref="MicroBatchSize"/> × <see cref="GradAccumulation"/> × <see cref="Ranks"/> plan ranks, constant whatever the
/// number of workers (a worker takes one or more plan ranks). <see cref="ShardCount"/> and <see cref="StartWorkers"/>
/// are the cluster's part of the submission: training starts once that many workers are in the group.
/// </summary>
public sealed record RunSpec(string RunId, RunOptions Options, int ShardCount, int StartWorkers = 1)
{
    [JsonIgnore] public int Ranks => Options.Ranks;
    [JsonIgnore] public int MicroBatchSize => Options.BatchSize;
    [JsonIgnore] public int GradAccumulation => Options.GradAccumulation;
    [JsonIgnore] public double Epochs => Options.Epochs;
    [JsonIgnore] public long MaxSteps => Options.MaxSteps;
    [JsonIgnore] public int SaveSteps => Options.SaveSteps;
    [JsonIgnore] public int ValSteps => Options.ValSteps;
    [JsonIgnore] public ulong Seed => unchecked((ulong)Options.Seed);
    [JsonIgnore] public double ValidationFraction => Options.ValidationFraction;
    /// <summary>Validation comes from its own manifest instead of a split of the training entries.</summary>
    [JsonIgnore] public bool SeparateValidation => Options.ValidationManifest is not null;
    /// <summary>Stop after this many validations without a new best (0 = off), as the single-process trainer does.</summary>
    [JsonIgnore] public int EarlyStoppingPatience => Options.EarlyStoppingPatience;

    /// <summary>A checkpoint folder every worker can read: the run continues after its step (its data cursor must match the plan).</summary>
    public string? ResumeFrom { get; init; }

    /// <summary>The resumed checkpoint's next step and its early-stopping bookkeeping.</summary>
    public long StartStep { get; init; }
    public double? ResumeBestLoss { get; init; }
    public int ResumeValidationsWithoutImprovement { get; init; }
    /// <summary>The step whose validation gave <see cref="ResumeBestLoss"/> (null: not known); checkpoint pruning spares its folder.</summary>
    public long? ResumeBestStep { get; init; }
}

public sealed record SubmitRun(RunSpec Spec) : IControlMessage;
public sealed record RunAccepted(string RunId) : IControlMessage;
public sealed record RunRejected(string RunId, string Reason) : IControlMessage;
public sealed record StopRun(string RunId, bool Checkpoint) : IControlMessage;
public sealed record RequestCheckpoint(string RunId, string? Tag) : IControlMessage;
public sealed record RequestValidation(string RunId) : IControlMessage;
public sealed record GetRunStatus(string RunId) : IControlMessage;
/// <summary><see cref="TotalSteps"/> is 0 until the plan is made; <see cref="LastStats"/> the last committed step's summed statistics.</summary>
public sealed record RunStatus(string RunId, RunPhase Phase, int Epoch, long CommittedSteps, long TotalSteps, string Detail, double[] LastStats) : IControlMessage;

/// <summary>
/// The coordinator's early-stopping counts: the best validation loss so far, the step it was validated at, and the
/// validations since without a new best. The coordinator outlives any worker, so a worker that became the lead after validations it did not run takes
/// these instead of its own.
/// </summary>
public sealed record EarlyStoppingCounts(double? BestLoss, int ValidationsWithoutImprovement, long? BestStep = null);

/// <summary>Coordinator → workers: save the adapter (and optimizer) after committed step <see cref="Step"/>.</summary>
/// <see cref="Final"/>: the run is over; also publish the adapter folder of the run. <see cref="Counts"/> (null from an
/// older coordinator): what the checkpoint's trainer state records for early stopping.
public sealed record CheckpointCommand(string RunId, long Step, string Tag, bool Final = false, EarlyStoppingCounts? Counts = null) : IControlMessage;
public sealed record CheckpointDone(string RunId, long Step, string Path) : IControlMessage;
/// <summary><see cref="Counts"/>: the coordinator's counts before this validation (null: the worker's own).</summary>
public sealed record ValidateCommand(string RunId, long Step, EarlyStoppingCounts? Counts = null) : IControlMessage;

/// <summary>
/// Coordinator → workers once the loaders have prepared every shard: the run's training and validation sample ids
/// (workers rebuild the same plan from them, for checkpoints' data cursor and for validation).
/// </summary>
public sealed record RunPlanned(RunSpec Spec, long[] TrainIds, long[] ValidationIds) : IControlMessage;
public sealed record ValidationDone(string RunId, long Step, double Loss) : IControlMessage;

/// <summary>The coordinator's cursor ledger: what every committed step consumed and under which worker group.</summary>
public sealed record GetRunLedger(string RunId) : IControlMessage;
public sealed record LedgerEntry(long GlobalStep, int Epoch, long Generation, int World, long[] SampleIds);
public sealed record RunLedger(string RunId, long[] PlannedTrainIds, long TotalSteps, LedgerEntry[] Steps) : IControlMessage
{
    public long[] ValidationIds { get; init; } = Array.Empty<long>();
    /// <summary>Entries left out while preparing, one line each (index and reason).</summary>
    public string[] Problems { get; init; } = Array.Empty<string>();
    public bool EarlyStopped { get; init; }
}
