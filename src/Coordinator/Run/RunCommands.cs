namespace HiggsCluster.Coordinator.Run;

/// <summary>What the coordinator asks of a run (from the cluster, workers, loaders or a user); <see cref="RunMachine.Decide"/> answers with events.</summary>
public abstract record RunCommand;
/// <summary>Membership as the coordinator sees it: loaders Up, and the current worker group (generation, size).</summary>
/// <see cref="Workers"/>: the group's worker ids in rank order (null: the caller does not track identities, and no
/// state hand-over is planned).
public sealed record MembershipChanged(IReadOnlyList<string> LoadersUp, long WorkerGeneration, int World, IReadOnlyList<string>? Workers = null) : RunCommand;
/// <summary>A loader read and checked shards: parsed entry ids, those that build into samples, problems.</summary>
public sealed record ShardsReported(int[] ShardIds, long[] ParsedIds, long[] UsableIds, string[] Problems) : RunCommand;
public sealed record StepReported(long Generation, long GlobalStep, int Rank, double[] Stats, ulong LoraChecksum) : RunCommand;
/// <summary><see cref="Path"/>: where the worker published it (what a resubmitted run resumes from).</summary>
public sealed record CheckpointFinished(long GlobalStep, string? Path = null) : RunCommand;
public sealed record ValidationFinished(long GlobalStep, double Loss) : RunCommand;
public sealed record CheckpointRequested(string? Tag) : RunCommand;
public sealed record ValidationRequested : RunCommand;
public sealed record StopRequested(bool Checkpoint) : RunCommand;
public sealed record FailRun(string Reason) : RunCommand;
/// <summary>A worker says it has applied <see cref="AppliedSteps"/> committed steps of the run (it registers with this).</summary>
public sealed record WorkerProgress(string WorkerId, long AppliedSteps) : RunCommand;
/// <summary>A worker loaded the committed state of <see cref="GlobalStep"/> steps handed over by a live peer.</summary>
public sealed record WorkerInstalled(string WorkerId, long GlobalStep) : RunCommand;
/// <summary>The worker asked to hand over its state could not (it does not hold step <see cref="GlobalStep"/>).</summary>
public sealed record HandOverRefused(string WorkerId, long GlobalStep, string Reason) : RunCommand;
/// <summary>After a fail-over, stop waiting for the workers of the last committed step's group and go on with those there.</summary>
public sealed record ResumeWaitOver : RunCommand;
/// <summary>The hand-over of step <see cref="GlobalStep"/>'s state in group <see cref="Generation"/> has not completed in time.</summary>
public sealed record HandOverOverdue(long Generation, long GlobalStep) : RunCommand;
/// <summary>A published checkpoint: its step, folder (null: the run's initial adapter) and early-stopping bookkeeping.</summary>
public sealed record CheckpointMark(long Step, string? Path, double? BestLoss, int ValidationsWithoutImprovement, long? BestStep = null);
