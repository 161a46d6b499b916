using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Hosting;

namespace HiggsCluster.Coordinator.Actors;

public static class CoordinatorHosting
{
    public const string Role = "coordinator";
    public const string SingletonName = "coordinator";

    /// <summary>
    /// The coordinator singleton on nodes with the coordinator role (manager + proxy), a proxy elsewhere; either way
    /// it is reachable through <c>registry.Get&lt;CoordinatorKey&gt;()</c>.
    /// </summary>
    public static AkkaConfigurationBuilder AddCoordinator(this AkkaConfigurationBuilder builder, bool hostsSingleton)
    {
        var options = new ClusterSingletonOptions { Role = Role };
        return hostsSingleton
            ? builder.WithSingleton<CoordinatorKey>(SingletonName, Props.Create(() => new CoordinatorActor()), options, createProxyToo: true)
            : builder.WithSingletonProxy<CoordinatorKey>(SingletonName, options);
    }
}
