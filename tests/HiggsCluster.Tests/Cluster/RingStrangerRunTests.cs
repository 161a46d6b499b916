using HiggsCluster.Tests.Harness;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A run whose workers' ring ports are hammered all along by strangers (idle sockets and forged hellos, the ports
/// read from the roster as any member could): no stranger takes a place in the ring, and the run trains every sample.
/// </summary>
[Trait("Category", "Cluster")]
[Trait("Category", "Adversarial")]
public sealed class RingStrangerRunTests
{
    private static async Task Harass(IPEndPoint[] targets, List<Socket> held, CancellationToken stop)
    {
        var hello = new byte[68];
        while (!stop.IsCancellationRequested)
        {
            foreach (var ep in targets)
            {
                var s = new Socket(SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await s.ConnectAsync(ep, stop);
                    if (held.Count < 20) { lock (held) held.Add(s); continue; } // idle: never says a word
                    RandomNumberGenerator.Fill(hello);
                    BitConverter.GetBytes(0x48524E47u).CopyTo(hello, 0);
                    await s.SendAsync(hello, SocketFlags.None, stop);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { }
                s.Dispose();
            }
            try { await Task.Delay(20, stop); } catch (OperationCanceledException) { }
        }
    }

    [Fact(Timeout = 90_000)]
    public async Task Strangers_on_the_ring_ports_neither_join_nor_stop_the_run()
    {
        var ct = TestContext.Current.CancellationToken;
        int port = LocalPorts.Next();
        var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles, RemoteTls = TestClusterCerts.Remote }.Validate();
        var r0 = new ToyCluster.ToyRunner();
        var r1 = new ToyCluster.ToyRunner();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b
            .AddHiggsNode(node)
            .AddDataLoader(new ToyCluster.IdBatches(13), new DataLoaderOptions { Window = 2 })
            .AddGpuWorker<CoordinatorKey>(r0, new GpuWorkerOptions { Name = "w0" })
            .AddGpuWorker<CoordinatorKey>(r1, new GpuWorkerOptions { Name = "w1" }))).Build();
        await host.StartAsync(ct);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var held = new List<Socket>();
        Task? harass = null;
        try
        {
            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            Roster roster;
            do { await Task.Delay(200, ct); roster = await coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(5), ct); }
            while (roster.Workers.Length < 2);
            var targets = roster.Workers.Select(w => new IPEndPoint(IPAddress.Parse(w.RingHost), w.RingPort)).ToArray();
            harass = Task.Run(() => Harass(targets, held, stop.Token), ct);

            var spec = ToyCluster.Spec("toy", ranks: 2, micro: 1, accum: 2, epochs: 2, shards: 3, startWorkers: 2, save: 3);
            Assert.Equal(new RunAccepted("toy"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));
            RunStatus st;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            do
            {
                await Task.Delay(250, ct);
                st = await coordinator.Ask<RunStatus>(new GetRunStatus("toy"), TimeSpan.FromSeconds(5), ct);
            } while (st.Phase is not (RunPhase.Completed or RunPhase.Failed) && DateTime.UtcNow < deadline);

            Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}");
            Assert.Equal(8, st.CommittedSteps);
            for (int i = 0; i < 100 && (r0.Steps < 8 || r1.Steps < 8); i++) await Task.Delay(50, ct);
            var seen = r0.Seen.Concat(r1.Seen).ToList();
            foreach (var id in Enumerable.Range(0, 13)) Assert.Equal(2, seen.Count(x => x == id));
            Assert.Equal(r0.Params.Select(BitConverter.SingleToInt32Bits), r1.Params.Select(BitConverter.SingleToInt32Bits));
            Assert.True(held.Count > 0, "the strangers never reached a ring port");
            roster = await coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(5), ct);
            Assert.Equal(2, roster.Workers.Length);
        }
        finally
        {
            stop.Cancel();
            if (harass is not null) await harass;
            lock (held) foreach (var s in held) s.Dispose();
            await host.StopAsync(CancellationToken.None);
        }
    }
}
