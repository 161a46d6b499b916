using System.Net;
using System.Net.Sockets;
using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Harness;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The first seed in the list (see <see cref="FirstSeedJoin"/>): restarted on its port while the other seed is up, it
/// joins the existing cluster; while another seed accepts connections but never answers, it does not form a cluster of
/// its own (Akka's rule would after 5 s), starts again instead, and forms one only once the silence outlasted
/// <see cref="FirstSeedJoin.SilentIncarnations"/> incarnations.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class FirstSeedRestartTests : IDisposable
{
    private readonly HiggsProcesses _nodes = new();

    private bool Up(string name, int count) => _nodes.Lines(name).Any(l =>
        l.StartsWith("HIGGS_NODE ", StringComparison.Ordinal) && l.Contains($" up={count} "));

    // a cluster of one: the node itself is its only member (a joining node also prints up=1 when it first sees another member)
    private bool Alone(string name, int port) => _nodes.Lines(name).Any(l =>
        l.StartsWith("HIGGS_NODE ", StringComparison.Ordinal) && System.Text.RegularExpressions.Regex.IsMatch(l, $@" up=1 members=\S+@127\.0\.0\.1:{port}$"));

    [Fact(Timeout = 180_000)]
    public async Task The_first_seed_restarted_on_its_port_joins_the_cluster_the_other_seed_is_in()
    {
        var ct = TestContext.Current.CancellationToken;
        int p1 = LocalPorts.Next(), p2 = LocalPorts.Next();
        var seeds = $"127.0.0.1:{p1},127.0.0.1:{p2}";
        string[] Args(int port) => new[] { "node", "--role", "loader", "--port", port.ToString(), "--seeds", seeds, "--cmd-port", "off", "--stable-after", "2" };
        var first = _nodes.Start("seed-1", Args(p1));
        _nodes.Start("seed-2", Args(p2));
        // a third member keeps the majority with seed-2 while seed-1 is gone (keep-majority would otherwise favour seed-1's side)
        _nodes.Start("loader", Args(LocalPorts.Next()));
        await _nodes.Until(() => Up("seed-2", 3), TimeSpan.FromSeconds(60), "three members up", ct);

        first.Kill();
        await first.WaitForExitAsync(ct);
        _nodes.Start("seed-1b", Args(p1));
        // the new incarnation is welcomed into seed-2's cluster: it sees all three members
        await _nodes.Until(() => Up("seed-1b", 3), TimeSpan.FromSeconds(90), "the restarted first seed in the cluster of three", ct);
        Assert.False(Alone("seed-1b", p1), "the restarted first seed formed a cluster of its own:\n" + _nodes.Tails());
        // seed-2 saw the old incarnation go (two members) and the new one come (three again)
        var seen = _nodes.Lines("seed-2").Where(l => l.StartsWith("HIGGS_NODE ", StringComparison.Ordinal)).Select(l => l.Contains(" up=3 ") ? 3 : l.Contains(" up=2 ") ? 2 : 0).ToList();
        int gone = seen.IndexOf(3) is var firstThree and >= 0 ? seen.FindIndex(firstThree, n => n == 2) : -1;
        Assert.True(gone >= 0 && seen.Skip(gone).Contains(3), $"seed-2's member counts: {string.Join(" ", seen)}\n" + _nodes.Tails());
    }

    [Fact(Timeout = 180_000)]
    public async Task A_seed_that_accepts_connections_but_never_answers_keeps_the_first_seed_from_forming_a_cluster_for_a_while()
    {
        var ct = TestContext.Current.CancellationToken;
        // a "seed" whose port accepts connections and never says anything, as a seed with a broken link to this address does
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var held = new System.Collections.Concurrent.ConcurrentBag<TcpClient>();
        _ = Task.Run(async () => { try { while (true) held.Add(await silent.AcceptTcpClientAsync(ct)); } catch { } }, ct);
        int p1 = LocalPorts.Next(), p2 = ((IPEndPoint)silent.LocalEndpoint).Port;
        var started = DateTime.UtcNow;
        _nodes.Start("seed-1", "node", "--role", "loader", "--port", p1.ToString(), "--seeds", $"127.0.0.1:{p1},127.0.0.1:{p2}",
            "--cmd-port", "off", "--join-timeout", "10");

        const string Again = "starting again as a new incarnation";
        await _nodes.Until(() => _nodes.Lines("seed-1").Count(l => l.Contains(Again)) >= 2, TimeSpan.FromSeconds(90), "two new incarnations", ct);
        Assert.Contains(_nodes.Lines("seed-1"), l => l.Contains("first seed waiting") && l.Contains($"127.0.0.1:{p2}"));
        // Akka alone forms the cluster 5 s after start; here two incarnations went by without one
        Assert.False(Alone("seed-1", p1), "the first seed formed a cluster beside a silent seed:\n" + _nodes.Tails());
        Assert.True(DateTime.UtcNow - started > TimeSpan.FromSeconds(10));

        await _nodes.Until(() => Alone("seed-1", p1), TimeSpan.FromSeconds(90), "a cluster formed once the silence outlasted the bound", ct);
        Assert.Equal(FirstSeedJoin.SilentIncarnations, _nodes.Lines("seed-1").Count(l => l.Contains(Again)));
        Assert.Contains(_nodes.Lines("seed-1"), l => l.Contains("have not answered for"));
        foreach (var c in held) c.Dispose();
    }

    public void Dispose() => _nodes.Dispose();
}
