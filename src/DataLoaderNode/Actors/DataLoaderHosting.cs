using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Messages.Faults;

namespace HiggsCluster.DataLoaderNode.Actors;

public sealed record DataLoaderOptions
{
    /// <summary>Batches built, ready or unacknowledged per worker rank (memory bound).</summary>
    public int Window { get; init; } = 3;
    /// <summary>Must stay below the remoting frame size of every node.</summary>
    public long MaxMessageBytes { get; init; } = 16 * 1024 * 1024 - 64 * 1024;
    /// <summary>Scheduled faults (drills and tests): the loader dies when it is about to serve a batch of the given step.</summary>
    public FaultInjector Faults { get; init; } = FaultInjector.None;

    public DataLoaderOptions Validate() => Window is >= 1 and <= 8 && MaxMessageBytes > 0
        ? this : throw new ArgumentException($"data loader: window must be 1..8 (got {Window}), max message bytes positive (got {MaxMessageBytes})");
}

public static class DataLoaderHosting
{
    /// <summary>The node's data loader at /user/data-loader, where the coordinator sends plans.</summary>
    public static AkkaConfigurationBuilder AddDataLoader(this AkkaConfigurationBuilder builder, IBatchBuilder batchBuilder, DataLoaderOptions? options = null)
    {
        var o = (options ?? new DataLoaderOptions()).Validate();
        return builder.WithActors((system, registry) =>
            registry.Register<DataLoaderActor>(system.ActorOf(Props.Create(() => new DataLoaderActor(batchBuilder, o.Window, o.MaxMessageBytes, o.Faults)), DataLoaderActor.Name)));
    }
}
