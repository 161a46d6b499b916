using HiggsCluster.Messages;

namespace HiggsCluster.DataLoaderNode.Actors;

/// <summary>
/// The loader's data path for runs. <see cref="Prepare"/> reads and checks the assigned shards (parse, load/encode
/// audio into the code cache, build samples) and says which ids are usable; <see cref="Build"/> collates the planned
/// micro-batch. The same plan must give the same batch on any loader. Build throws with a message naming the sample
/// to fail the batch (reported, never dropped). Both may be called from several threads.
/// </summary>
public interface IBatchBuilder
{
    ShardsPrepared Prepare(AssignShards assignment);
    BatchDelivery Build(RunSpec spec, PlanMicroBatch plan);
}
