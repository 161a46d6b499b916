using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Cluster;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>Akka remoting over TLS: nodes with certificates of the cluster CA form a cluster; a node with any other one cannot join.</summary>
[Trait("Category", "Cli")]
public sealed class RemoteTlsTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static IHost Node(int port, string seeds, string roles, string pfx) =>
        new HostBuilder().ConfigureServices(s =>
        {
            var o = new NodeOptions
            {
                Port = port, Seeds = new[] { seeds }, Roles = roles.Split(','), RemoteTls = new RemoteTlsOptions(pfx, null),
            }.Validate();
            s.AddAkka(o.SystemName, (b, _) => b.AddHiggsNode(o));
        }).Build();

    private static int Up(IHost h) => Akka.Cluster.Cluster.Get(h.Services.GetRequiredService<ActorSystem>()).State.Members.Count(m => m.Status == MemberStatus.Up);

    [Fact(Timeout = 120_000)]
    [Trait("Category", "Adversarial")]
    public async Task Nodes_with_certificates_of_the_cluster_CA_form_a_cluster_and_strangers_cannot_join()
    {
        var ct = TestContext.Current.CancellationToken;
        int p1 = LocalPorts.Next(), p2 = LocalPorts.Next(), p3 = LocalPorts.Next(), p4 = LocalPorts.Next();
        var seeds = $"127.0.0.1:{p1}";
        // two different node certificates of one CA (this was refused before: only an identical PFX joined)
        using var a = Node(p1, seeds, "coordinator", TestClusterCerts.Pfx("node"));
        using var b = Node(p2, seeds, "loader", TestClusterCerts.Pfx("node-b"));
        // strangers that trust the cluster CA but hold a self-signed certificate or one of another CA
        using var c = Node(p3, seeds, "loader", TestClusterCerts.SelfSignedPfx);
        using var d = Node(p4, seeds, "worker", TestClusterCerts.OtherCaBundledPfx);
        await a.StartAsync(ct);
        await b.StartAsync(ct);
        await c.StartAsync(ct);
        await d.StartAsync(ct);
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(40);
            // both sides must have seen the gossip: a may mark b Up a moment before b hears of it
            while ((Up(a) < 2 || Up(b) < 2) && DateTime.UtcNow < deadline) await Task.Delay(200, ct);
            Assert.Equal(2, Up(a));
            Assert.Equal(2, Up(b));
            // the strangers keep trying (join retries every 2 s); give them several rounds
            await Task.Delay(TimeSpan.FromSeconds(8), ct);
            Assert.Equal(2, Up(a));
            Assert.DoesNotContain(Akka.Cluster.Cluster.Get(a.Services.GetRequiredService<ActorSystem>()).State.Members, m => m.Address.Port == p3 || m.Address.Port == p4);
            Assert.Equal(0, Up(c));
            Assert.Equal(0, Up(d));
        }
        finally
        {
            await d.StopAsync(CancellationToken.None);
            await c.StopAsync(CancellationToken.None);
            await b.StopAsync(CancellationToken.None);
            await a.StopAsync(CancellationToken.None);
        }
    }

    public void Dispose() => _dir.Dispose();
}
