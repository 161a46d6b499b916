using HiggsCluster.Messages;

namespace HiggsCluster.DataLoaderNode.Actors;

/// <summary>
/// Builds the collated micro-batch for planned sample ids (load/encode audio, tokenize, collate). The same plan must
/// give the same batch. Throw with a message naming the sample to fail the batch (reported, never dropped).
/// </summary>
public interface IBatchBuilder
{
    BatchDelivery Build(PlanMicroBatch plan);
}
