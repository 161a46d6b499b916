using Akka.Hosting;
using Akka.Serialization;

namespace HiggsCluster.Messages.Serialization;

public static class SerializationHosting
{
    public const string HyperionName = "hyperion";
    public const string BulkName = "higgs-bulk";

    /// <summary>
    /// Binds tensors/batches to <see cref="BulkSerializer"/> and every other protocol message to Hyperion
    /// (never the JSON default), with <see cref="RunSpecHyperion"/>'s forms of a run spec. The same call must run on every
    /// node and client.
    /// </summary>
    public static AkkaConfigurationBuilder AddHiggsSerializers(this AkkaConfigurationBuilder builder) => builder
        .WithCustomSerializer(BulkName, new[] { typeof(IBulkMessage) }, s => new BulkSerializer(s))
        .WithCustomSerializer(HyperionName, new[] { typeof(IControlMessage) }, s => new HyperionSerializer(s, RunSpecHyperion.Settings(s)));
}
