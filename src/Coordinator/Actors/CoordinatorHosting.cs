using Akka.Actor;
using Akka.Pattern;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using HiggsCluster.Coordinator.Run;

namespace HiggsCluster.Coordinator.Actors;

public sealed record CoordinatorOptions
{
    public CoordinatorJournal Journal { get; init; } = CoordinatorJournal.InMemory;
    /// <summary>
    /// After a fail-over, how long a run waits for as many workers as its last committed step had (they re-register
    /// every 5 s) before it goes on with those there.
    /// </summary>
    public TimeSpan ResumeWait { get; init; } = TimeSpan.FromSeconds(15);
    /// <summary>How long a state hand-over to a newcomer may take before it is asked for again (its chunks may be lost).</summary>
    public TimeSpan HandOverTimeout { get; init; } = TimeSpan.FromSeconds(60);

    public CoordinatorOptions Validate()
    {
        Journal.Validate();
        if (ResumeWait < TimeSpan.Zero) throw new ArgumentException($"coordinator: resume wait {ResumeWait} is negative");
        if (HandOverTimeout <= TimeSpan.Zero) throw new ArgumentException($"coordinator: hand-over timeout {HandOverTimeout} must be positive");
        return this;
    }
}

public static class CoordinatorHosting
{
    public const string Role = "coordinator";
    public const string SingletonName = "coordinator";

    /// <summary>
    /// The coordinator singleton on nodes with the coordinator role (manager + proxy, and its journal), a proxy
    /// elsewhere; either way it is reachable through <c>registry.Get&lt;CoordinatorKey&gt;()</c>.
    /// </summary>
    public static AkkaConfigurationBuilder AddCoordinator(this AkkaConfigurationBuilder builder, bool hostsSingleton, CoordinatorOptions? options = null)
    {
        var singleton = new ClusterSingletonOptions { Role = Role };
        // the journal's own versioned format (rows written by Hyperion before it are still read by their serializer id)
        builder.WithCustomSerializer(JournalSerializer.Name, new[] { typeof(RunEvent), typeof(WorkerGroupFormed) }, s => new JournalSerializer(s));
        if (!hostsSingleton) return builder.WithSingletonProxy<CoordinatorKey>(SingletonName, singleton);
        var o = (options ?? new CoordinatorOptions()).Validate();
        o.Journal.AddTo(builder);
        // a journal that cannot be written or read stops the persistent actor: start it again (it replays) after a back-off
        var coordinator = Props.Create(() => new CoordinatorActor(o.ResumeWait, o.HandOverTimeout));
        var supervised = BackoffSupervisor.Props(Backoff.OnStop(coordinator, "run-coordinator", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30), 0.2, -1));
        return builder.WithSingleton<CoordinatorKey>(SingletonName, supervised, singleton, createProxyToo: true);
    }
}
