using Akka.Actor;
using Akka.Cluster.Hosting;
using Akka.Event;
using Akka.Cluster.Hosting.SBR;
using Akka.Hosting;
using Akka.Remote.Hosting;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.DataLoaderNode.Building;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.GpuWorker.Engine;
using HiggsCluster.Messages.Faults;
using HiggsCluster.Messages.Serialization;

namespace HiggsCluster.Cli.Node;

public static class NodeHosting
{
    /// <summary>
    /// Remoting (frame size), clustering (roles, keep-majority SBR), serializers and the coordinator singleton or its
    /// proxy (with its journal on coordinator nodes). HOCON only where Akka.Hosting has no typed option: the SBR/join
    /// timings, and the SQL journal (see <see cref="CoordinatorJournal"/>). The node joins its static seeds itself,
    /// once a seed says its address is free (<see cref="JoinWhenAddressFree"/>), rather than through Akka's seed-nodes.
    /// </summary>
    public static AkkaConfigurationBuilder AddHiggsNode(this AkkaConfigurationBuilder b, NodeOptions o, TextWriter? statusOut = null)
    {
        if (o.Insecure) Console.Error.WriteLine("higgs node: " + NodeOptions.InsecureWarning);
        var stable = $"{(int)Math.Round(o.StableAfter.TotalMilliseconds)}ms";
        b.AddHocon($@"akka.cluster.split-brain-resolver.stable-after = {stable}
                      akka.cluster.retry-unsuccessful-join-after = 2s
                      akka.cluster.shutdown-after-unsuccessful-join-seed-nodes = {(int)Math.Round(o.JoinTimeout.TotalMilliseconds)}ms
                      akka.coordinated-shutdown.exit-clr = off", HoconAddMode.Prepend)
         .WithRemoting(RemoteTlsOptions.Apply(o.RemoteTls, new RemoteOptions { HostName = o.Host, PublicHostName = o.PublicHost ?? o.Host, Port = o.Port, MaxFrameSize = o.MaxFrameSize }))
         .WithClustering(new ClusterOptions
         {
             Roles = o.Roles.ToArray(),
             SplitBrainResolver = new KeepMajorityOption(),
             FailureDetector = new PhiAccrualFailureDetectorOptions { AcceptableHeartbeatPause = o.HeartbeatPause },
         })
         .AddHiggsSerializers()
         .AddCoordinator(hostsSingleton: o.Roles.Contains(CoordinatorHosting.Role),
             new CoordinatorOptions { Journal = o.Journal, ResumeWait = o.ResumeWait })
         .AddCommandHost(o.CommandHost, statusOut)
         .AddRejoinGate()
         .WithActors((system, registry) =>
         {
             if (o.Insecure) system.Log.Warning(NodeOptions.InsecureWarning);
             var status = system.ActorOf(Props.Create(() => new NodeStatusActor(statusOut)), NodeStatusActor.Name);
             registry.Register<NodeStatusActor>(status);
             _ = JoinWhenAddressFree.Run(system, o.SeedAddresses.Select(Address.Parse).ToList(), o, Console.Error);
         });
        return b;
    }

    /// <summary>The real data path on loader nodes and the real engine on worker nodes (tests may plug in their own instead).</summary>
    public static AkkaConfigurationBuilder AddHiggsRoleActors(this AkkaConfigurationBuilder b, NodeOptions o)
    {
        if (o.Roles.Contains("loader"))
            b.AddDataLoader(new SampleBatchBuilder(), new DataLoaderOptions { Window = o.LoaderWindow, Faults = new FaultInjector(o.Faults, "loader") });
        if (o.Roles.Contains("worker"))
        {
            var faults = new FaultInjector(o.Faults, "worker");
            var runner = new EngineStepRunner { BeforeCheckpointPublish = step => faults.At(FaultPoint.CheckpointWrite, step) };
            b.AddGpuWorker<CoordinatorKey>(runner, new GpuWorkerOptions { RingHost = o.RingHost, Faults = faults });
        }
        return b;
    }
}
