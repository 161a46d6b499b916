namespace HiggsCluster.Messages;

/// <summary>Worker → coordinator on start: where its ring all-reduce listener is and whether it has CUDA.</summary>
public sealed record RegisterWorker(string WorkerId, string RingHost, int RingPort, bool HasCuda) : IControlMessage;

public sealed record RingPeer(int Rank, string WorkerId, string Host, int Port);

/// <summary>
/// Coordinator → every worker of a generation: the ordered ring and, for NCCL, the unique id made on rank 0.
/// A new generation is formed whenever membership changes.
/// </summary>
public sealed record AllReduceGroup(string RunId, long Generation, RingPeer[] Peers, byte[]? NcclUniqueId) : IControlMessage;

/// <summary>Coordinator → workers: run global step <see cref="Step"/> (batches come from the loaders by pull).</summary>
public sealed record StartStep(string RunId, long Generation, int Epoch, long Step, int MicroBatches) : IControlMessage;

/// <summary>Worker → coordinator: the rank finished the step (optimizer stepped) with this loss and LoRA checksum.</summary>
public sealed record StepDone(string RunId, long Generation, long Step, int Rank, double Loss, ulong LoraChecksum) : IControlMessage;

public sealed record StepCommitted(string RunId, long Step) : IControlMessage;

public sealed record GetNodeStatus : IControlMessage
{
    public static readonly GetNodeStatus Instance = new();
}

public sealed record NodeStatus(string Address, string[] Roles, int MembersUp, string[] UpAddresses) : IControlMessage;
