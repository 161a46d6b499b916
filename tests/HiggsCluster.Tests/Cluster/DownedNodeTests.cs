using System.Diagnostics;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Harness;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;
using AkkaCluster = Akka.Cluster.Cluster;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A node the cluster downs must not look like one that left: a real <c>higgs node</c> process frozen (SIGSTOP) past
/// the failure detector's pause and the split-brain resolver's stable-after is downed by the majority; when it runs
/// again it must exit with <see cref="ErrorExit.Downed"/> and one line saying why, never a silent 0.
/// </summary>
[Trait("Category", "Cluster")]
[Trait("Category", "Fault")]
public sealed class DownedNodeTests : IDisposable
{
    private readonly HiggsProcesses _nodes = new();

    [Fact(Timeout = 120_000)]
    public async Task A_node_downed_by_the_split_brain_resolver_exits_3_with_one_line()
    {
        var ct = TestContext.Current.CancellationToken;
        int seedPort = LocalPorts.Next(), loaderPort = LocalPorts.Next();
        // short timings (the harness's own): the product defaults would make the test wait 15 s for nothing
        var pause = TimeSpan.FromSeconds(2);
        var seed = new NodeOptions
        {
            Port = seedPort, Seeds = new[] { $"127.0.0.1:{seedPort}" }, Roles = new[] { "coordinator" }, RemoteTls = TestClusterCerts.Remote,
            HeartbeatPause = pause, StableAfter = TimeSpan.FromSeconds(1),
        }.Validate();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(seed.SystemName, (b, _) => b.AddHiggsNode(seed))).Build();
        await host.StartAsync(ct);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            // the option reached the cluster's failure detector (typed Akka.Hosting option, not HOCON)
            Assert.Equal(pause, AkkaCluster.Get(system).Settings.FailureDetectorConfig.GetTimeSpan("acceptable-heartbeat-pause"));

            var loader = _nodes.Start("loader", "node", "--role", "loader", "--port", loaderPort.ToString(), "--seeds", $"127.0.0.1:{seedPort}",
                "--cmd-port", "off", "--heartbeat-pause", "2", "--stable-after", "1");
            var cluster = AkkaCluster.Get(system);
            var sw = Stopwatch.StartNew();
            while (cluster.State.Members.Count(m => m.Status == Akka.Cluster.MemberStatus.Up) < 2)
            {
                _nodes.AssertAlive();
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(60), $"the loader did not join in 60 s\n{_nodes.Tails()}");
                await Task.Delay(200, ct);
            }

            // frozen as a loaded machine or a long GC pause would: it misses heartbeats and the seed's side (the
            // oldest, lowest address of two) downs it; it hears of that, or downs the other side itself, once it runs again
            Signal("STOP", loader.Id);
            sw.Restart();
            while (cluster.State.Members.Any(m => m.Address.Port == loaderPort) && sw.Elapsed < TimeSpan.FromSeconds(40)) await Task.Delay(200, ct);
            Assert.DoesNotContain(cluster.State.Members, m => m.Address.Port == loaderPort);
            Signal("CONT", loader.Id);

            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(40));
            try { await loader.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { Assert.Fail($"the downed loader did not exit within 40 s\n{_nodes.Tails()}"); }
            Assert.True(loader.ExitCode == ErrorExit.Downed, $"exit {loader.ExitCode}\n{_nodes.Tails(30)}");
            var said = _nodes.Lines("loader").Where(l => l.Contains("was downed by the cluster", StringComparison.Ordinal)).ToList();
            var line = Assert.Single(said);
            Assert.StartsWith("ERR higgs: node loader on 127.0.0.1:" + loaderPort, line);
            Assert.Contains("--heartbeat-pause 2 s", line);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static void Signal(string signal, int pid)
    {
        using var p = Process.Start("kill", $"-{signal} {pid}")!;
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
    }

    public void Dispose() => _nodes.Dispose();
}
