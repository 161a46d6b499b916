using System.Threading.Channels;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Harness;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using AkkaCluster = Akka.Cluster.Cluster;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A worker's node that died and is downed before the failure detector noticed it (the rejoin gate does that when the
/// worker comes back on its port) leaves the group at once: the coordinator does not wait for the node's removal, which
/// then waits for that detector. Here the detector's pause is a minute, so only the downing can move the group on in time.
/// The coordinator is this process's node; two workers are real <c>higgs node</c> processes (one is SIGKILLed), a third
/// a stand-in actor here that registers like a worker and records the groups it is given.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class CoordinatorDownedMemberTests : IDisposable
{
    private readonly HiggsProcesses _nodes = new();
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(20);

    private sealed class StandInWorker : ReceiveActor
    {
        public StandInWorker(IActorRef coordinator, ChannelWriter<AllReduceGroup> groups)
        {
            coordinator.Tell(new RegisterWorker("stand-in", "127.0.0.1", 7001, false));
            Receive<AllReduceGroup>(g => groups.TryWrite(g));
            ReceiveAny(_ => { });
        }
    }

    [Fact(Timeout = 180_000)]
    public async Task A_dead_worker_downed_when_it_restarts_on_its_port_leaves_the_group_before_the_failure_detector_notices_it()
    {
        var ct = TestContext.Current.CancellationToken;
        int seedPort = LocalPorts.Next(), workerPort = LocalPorts.Next();
        var seed = new NodeOptions
        {
            Port = seedPort, Seeds = new[] { $"127.0.0.1:{seedPort}" }, Roles = new[] { "coordinator" }, RemoteTls = TestClusterCerts.Remote,
            HeartbeatPause = TimeSpan.FromSeconds(60), StableAfter = TimeSpan.FromSeconds(1),
        }.Validate();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(seed.SystemName, (b, _) => b.AddHiggsNode(seed))).Build();
        await host.StartAsync(ct);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            var cluster = AkkaCluster.Get(system);
            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var spec = ToyCluster.Spec("downed", ranks: 2, micro: 1, accum: 1, epochs: 1, shards: 1, save: 0, val: 0, maxSteps: 0, seed: 3);
            Assert.Equal(new RunAccepted("downed"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(60), ct));
            var groups = Channel.CreateUnbounded<AllReduceGroup>();
            system.ActorOf(Props.Create(() => new StandInWorker(coordinator, groups.Writer)), "stand-in");

            async Task<AllReduceGroup> GroupOf(int peers, TimeSpan within, string what)
            {
                using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
                cts.CancelAfter(within);
                try
                {
                    while (true)
                        if (await groups.Reader.ReadAsync(cts.Token) is { } g && g.Peers.Length == peers) return g;
                }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested)
                {
                    Assert.Fail($"no group of {peers} within {within.TotalSeconds:0} s: {what}\n{_nodes.Tails()}");
                    throw;
                }
            }

            // two worker processes with the same minute-long pause, so no side gives up on another by itself. No loaders:
            // the run waits, and only the group traffic goes on.
            string[] Worker(int port) => new[] { "node", "--role", "worker", "--port", port.ToString(), "--seeds", $"127.0.0.1:{seedPort}",
                "--cmd-port", "off", "--heartbeat-pause", "60", "--stable-after", "1", "--threads", "1" };
            var worker = _nodes.Start("worker", Worker(workerPort));
            _nodes.Start("survivor", Worker(LocalPorts.Next()));
            var three = await GroupOf(3, TimeSpan.FromSeconds(90), "both worker processes registered");

            worker.Kill();
            await worker.WaitForExitAsync(ct);
            var dead = Assert.Single(cluster.State.Members, m => m.Address.Port == workerPort);
            // restarted on its port: before it joins, it asks the seed's rejoin gate, which downs the dead incarnation
            _nodes.Start("worker-again", Worker(workerPort));
            await _nodes.Until(() => !cluster.State.Members.Any(m => m.UniqueAddress.Equals(dead.UniqueAddress) && m.Status == Akka.Cluster.MemberStatus.Up),
                TimeSpan.FromSeconds(60), "the gate downed the dead incarnation", ct);

            // long before the detector's pause, the survivors form a group without it
            var two = await GroupOf(2, Wait, "the downed node's worker left the group");
            Assert.True(two.Generation > three.Generation, $"generation {two.Generation} after {three.Generation}");
            // and that was not the failure detector's doing
            Assert.DoesNotContain(cluster.State.Unreachable, m => m.UniqueAddress.Equals(dead.UniqueAddress));
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    public void Dispose() => _nodes.Dispose();
}
