using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.Messages.Faults;

namespace HiggsCluster.GpuWorker.Actors;

public sealed record GpuWorkerOptions
{
    public string Name { get; init; } = "gpu-worker";
    /// <summary>Address other workers reach this worker's ring listener on.</summary>
    public string RingHost { get; init; } = "127.0.0.1";
    /// <summary>Batches each loader may have in flight to this worker.</summary>
    public int Credits { get; init; } = 2;
    public TimeSpan RingTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Scheduled faults (drills and tests): the worker dies before or after the all-reduce of a step.</summary>
    public FaultInjector Faults { get; init; } = FaultInjector.None;
    /// <summary>How groups are formed (TCP ring / NCCL); null: the real ones, NCCL where CUDA and libnccl are usable.</summary>
    public IAllReduceBackends? Backends { get; init; }

    public GpuWorkerOptions Validate() => Credits is >= 1 and <= 4 && RingTimeout > TimeSpan.Zero && !string.IsNullOrWhiteSpace(Name)
        ? this : throw new ArgumentException($"gpu worker: credits must be 1..4 (got {Credits}), ring timeout positive, name set");
}

public static class GpuWorkerHosting
{
    /// <summary>A worker actor that registers with the coordinator registered under <typeparamref name="TCoordinatorKey"/>.</summary>
    public static AkkaConfigurationBuilder AddGpuWorker<TCoordinatorKey>(this AkkaConfigurationBuilder builder, IStepRunner runner, GpuWorkerOptions? options = null)
    {
        var o = (options ?? new GpuWorkerOptions()).Validate();
        return builder.WithActors((system, registry) =>
        {
            var coordinator = registry.Get<TCoordinatorKey>();
            // one dedicated OS thread per worker (Akka's stock PinnedDispatcher definition): CUDA's current device and
            // libtorch's per-thread caches belong to a thread, and a worker's steps must not hop between pool threads
            system.ActorOf(Props.Create(() => new GpuWorkerActor(runner, coordinator, o.RingHost, o.Credits, o.RingTimeout, o.Faults, o.Backends))
                .WithDispatcher("akka.io.pinned-dispatcher"), o.Name);
        });
    }
}
