namespace HiggsCluster.Messages;

public sealed record RegisterLoader(string LoaderId) : IControlMessage;

/// <summary>
/// Coordinator → loader: the manifest shards (entry index mod shard count) this loader owns from
/// <see cref="Generation"/> on. The loader reads and checks them and answers <see cref="ShardsPrepared"/>.
/// </summary>
public sealed record AssignShards(string RunId, long Generation, int ShardCount, int[] ShardIds, RunSpec Spec) : IControlMessage;

/// <summary>
/// Loader → coordinator: for its shards, the ids of the entries that parsed (the split is made over these, as the
/// single-process trainer does), those that also built into a usable sample, and one line per skipped entry.
/// </summary>
public sealed record ShardsPrepared(string RunId, long Generation, int[] ShardIds, long[] ParsedIds, long[] UsableIds, string[] Problems) : IControlMessage;

/// <summary>Coordinator → loader: the sample ids of one planned micro-batch and who will pull it.</summary>
/// A newer <see cref="Generation"/> for the run replaces everything planned before (the worker group changed).
public sealed record PlanMicroBatch(string RunId, long Generation, int Epoch, long Step, int Rank, int Micro, long[] SampleIds) : IControlMessage;

/// <summary>
/// Worker → loader: "as rank <see cref="Rank"/> of group <see cref="Generation"/> I can take <see cref="Credits"/>
/// more batches" (pull, bounded window). A demand of an older group is ignored: ranks are renumbered per group.
/// </summary>
public sealed record BatchDemand(string RunId, long Generation, int Rank, int Credits) : IControlMessage;

/// <summary>Worker → loader: the batch was received and may be released.</summary>
public sealed record BatchAck(string RunId, long Step, int Rank, int Micro, long Generation) : IControlMessage;

/// <summary>Loader → worker: the planned batch could not be built (bad sample etc.); never silently dropped.</summary>
public sealed record BatchFailed(string RunId, long Step, int Rank, int Micro, string Reason) : IControlMessage;
