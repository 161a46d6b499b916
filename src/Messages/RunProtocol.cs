namespace HiggsCluster.Messages;

public enum RunPhase { Submitted, Preparing, Training, Validating, Checkpointing, Completed, Failed, Stopped }

/// <summary>
/// What a run trains on and how the global batch is cut. <see cref="SamplesPerStep"/> is the global batch
/// (constant whatever the number of workers); each rank gets an equal share split into micro-batches of
/// <see cref="MicroBatchSize"/>. The first step waits for <see cref="StartWorkers"/> workers (a worker joining later
/// does not yet receive the committed LoRA state, so it must be there from the start).
/// </summary>
public sealed record RunSpec(
    string RunId,
    string ManifestPath,
    long SampleCount,
    int ShardCount,
    int Epochs,
    int SamplesPerStep,
    int MicroBatchSize,
    int SaveSteps,
    int ValSteps,
    ulong Seed,
    long MaxSteps = 0,
    int StartWorkers = 1);

public sealed record SubmitRun(RunSpec Spec) : IControlMessage;
public sealed record RunAccepted(string RunId) : IControlMessage;
public sealed record RunRejected(string RunId, string Reason) : IControlMessage;
public sealed record StopRun(string RunId, bool Checkpoint) : IControlMessage;
public sealed record RequestCheckpoint(string RunId, string? Tag) : IControlMessage;
public sealed record RequestValidation(string RunId) : IControlMessage;
public sealed record GetRunStatus(string RunId) : IControlMessage;
public sealed record RunStatus(string RunId, RunPhase Phase, int Epoch, long CommittedSteps, string Detail) : IControlMessage;

/// <summary>Coordinator → workers: save the adapter (and optimizer) after committed step <see cref="Step"/>.</summary>
public sealed record CheckpointCommand(string RunId, long Step, string Tag) : IControlMessage;
public sealed record CheckpointDone(string RunId, long Step, string Path) : IControlMessage;
public sealed record ValidateCommand(string RunId, long Step) : IControlMessage;
public sealed record ValidationDone(string RunId, long Step, double Loss) : IControlMessage;
