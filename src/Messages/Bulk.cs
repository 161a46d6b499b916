namespace HiggsCluster.Messages;

/// <summary>
/// One collated micro-batch for one worker rank of one global step, as planned by the coordinator:
/// <see cref="SampleIds"/> are the manifest sample ids it was built from (so it can be rebuilt from the plan),
/// <see cref="Tensors"/> the collated fields (HiggsBatch field names). <see cref="Generation"/> is the worker group
/// it was planned for: a batch of an older group is stale even when its step number matches.
/// </summary>
public sealed record BatchDelivery(
    string RunId, long Generation, int Epoch, long Step, int Rank, int Micro, long[] SampleIds, NamedTensor[] Tensors) : IBulkMessage;

/// <summary>A named set of tensors at a committed step (LoRA adapter or optimizer state handed between nodes).</summary>
public sealed record TensorSnapshot(string RunId, long Step, NamedTensor[] Tensors) : IBulkMessage;
