using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// Real `higgs node` processes against a cluster whose seed (this process) holds a certificate of the test cluster CA:
/// strangers without a certificate, with a self-signed one or with one of another CA never become members nor get a
/// rank, and a stranger's own command host cannot act on the cluster; a node with any certificate of the CA joins.
/// </summary>
[Trait("Category", "Cluster")]
[Trait("Category", "Adversarial")]
public sealed class StrangerNodeTests : IDisposable
{
    private const string Token = "stranger-token-0123456789";
    private readonly HiggsProcesses _nodes = new();
    private readonly string _tokenFile = Path.GetTempFileName();

    private static Dictionary<string, string?> Cert(string? pfx) => new() { [TestClusterCerts.EnvVar] = pfx, ["HIGGS_CMD_TOKEN"] = Token };

    [Fact(Timeout = 120_000)]
    public async Task A_node_without_a_certificate_refuses_to_start_with_one_line()
    {
        var p = _nodes.Start("bare", Cert(null), "node", "--role", "worker", "--port", LocalPorts.Next().ToString(),
            "--seeds", $"127.0.0.1:{LocalPorts.Next()}", "--cmd-port", "off");
        Assert.True(p.WaitForExit(60_000), "the node did not exit:\n" + _nodes.Tails());
        p.WaitForExit();
        Assert.Equal(2, p.ExitCode);
        var err = _nodes.Lines("bare").Where(l => l.StartsWith("ERR ", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(err);
        Assert.Contains("refuses to start without remoting TLS", line);
        Assert.Contains("--insecure", line);
    }

    [Fact(Timeout = 240_000)]
    public async Task Strangers_never_join_nor_get_a_rank_and_a_member_of_the_CA_does()
    {
        var ct = TestContext.Current.CancellationToken;
        int seedPort = LocalPorts.Next();
        var seeds = $"127.0.0.1:{seedPort}";
        using var host = ClusterTestRuns.CoordinatorHost(seedPort);
        await host.StartAsync(ct);
        try
        {
            var ports = new Dictionary<string, int>();
            void Worker(string name, string? pfx, params string[] extra)
            {
                ports[name] = LocalPorts.Next();
                _nodes.Start(name, Cert(pfx), new[] { "node", "--role", "worker", "--port", ports[name].ToString(), "--seeds", seeds, "--threads", "1", "--cmd-port", "0" }.Concat(extra).ToArray());
            }
            Worker("insecure", null, "--insecure");
            Worker("self-signed", TestClusterCerts.SelfSignedPfx);
            Worker("other-ca", TestClusterCerts.OtherCaBundledPfx);
            Worker("member", TestClusterCerts.Pfx("node-b"));

            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            Roster roster;
            var deadline = DateTime.UtcNow.AddSeconds(120);
            do
            {
                await Task.Delay(500, ct);
                roster = await coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(10), ct);
            } while (roster.Workers.Length == 0 && DateTime.UtcNow < deadline);
            // the member joined and has a rank
            var w = Assert.Single(roster.Workers);
            Assert.Contains($":{ports["member"]}/", w.Path);
            // the strangers keep trying to join (every 2 s): give them several rounds, then look again
            await Task.Delay(TimeSpan.FromSeconds(10), ct);
            roster = await coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(10), ct);
            Assert.Single(roster.Workers);
            var members = Akka.Cluster.Cluster.Get(host.Services.GetRequiredService<ActorSystem>()).State.Members.Select(m => m.Address.Port).ToList();
            foreach (var s in new[] { "insecure", "self-signed", "other-ca" })
            {
                Assert.DoesNotContain(ports[s], members);
                // a refused stranger keeps trying, unless it saw the refusal during its own TLS handshake: Akka stops a
                // node whose outbound handshake fails (a race of TLS 1.3), and then the node says so and exits 4, never 0
                var p = _nodes.Get(s);
                if (p.HasExited)
                {
                    Assert.True(p.ExitCode == HiggsCluster.Cli.ErrorExit.TlsRefused, $"{s} exited {p.ExitCode}: it should keep running, refused, or stop on the TLS refusal:\n{_nodes.Tails()}");
                    Assert.Contains(_nodes.Lines(s), l => l.StartsWith("ERR higgs: node worker on ", StringComparison.Ordinal) && l.Contains("certificate"));
                }
            }
            Assert.Contains(ports["member"], members);
            Assert.Contains(_nodes.Lines("insecure"), l => l.Contains("WARNING: --insecure"));

            // the insecure stranger's own command host answers (its token), but it cannot reach the cluster: the
            // membership it shows is empty of the seed, and run commands find no coordinator
            var cmd = CmdPort("insecure", ct);
            var show = await Cli(await cmd, "cluster", "show");
            Assert.DoesNotContain($":{seedPort}", show.Out);
            var list = await Cli(await cmd, "run", "list");
            Assert.NotEqual(0, list.Code);
            Assert.DoesNotContain('\n', list.Err.Trim());
        }
        finally
        {
            _nodes.Dispose();
            await host.StopAsync(CancellationToken.None);
        }
    }

    private async Task<int> CmdPort(string name, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            var line = _nodes.Lines(name).FirstOrDefault(l => l.StartsWith("HIGGS_CMD listening=", StringComparison.Ordinal));
            if (line is not null) return int.Parse(line.Split(' ')[1].Split(':')[^1]);
            await Task.Delay(200, ct);
        }
        throw new TimeoutException($"{name}: no command host:\n{_nodes.Tails()}");
    }

    private Task<(int Code, string Out, string Err)> Cli(int port, params string[] args) => Task.Run(() =>
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        int code = HiggsCluster.Cli.Pbm.PbmCommand.Run(new[] { $"127.0.0.1:{port}" }.Concat(args).Concat(new[] { "--token-file", _tokenFile }).ToArray(), o, e);
        return (code, o.ToString(), e.ToString());
    });

    public StrangerNodeTests() => File.WriteAllText(_tokenFile, Token + "\n");

    public void Dispose()
    {
        _nodes.Dispose();
        File.Delete(_tokenFile);
    }
}
