using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Harness;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// A `higgs node` whose join no seed accepts within --join-timeout starts again in the same process as a new
/// incarnation on the same port (a peer can keep a broken link to an address whose previous process died), and keeps
/// doing so: it neither exits nor hangs silently.
/// </summary>
[Trait("Category", "Cluster")]
public sealed class NodeJoinTimeoutTests : IDisposable
{
    private readonly HiggsProcesses _nodes = new();

    [Fact(Timeout = 120_000)]
    public async Task A_node_no_seed_accepts_starts_again_as_a_new_incarnation_on_the_same_port()
    {
        var ct = TestContext.Current.CancellationToken;
        int port = LocalPorts.Next(), nobody = LocalPorts.Next();
        var p = _nodes.Start("lonely", "node", "--role", "loader", "--port", port.ToString(), "--seeds", $"127.0.0.1:{nobody}",
            "--join-timeout", "10", "--cmd-port", "off");
        const string Again = "no seed accepted the join within 10 s; starting again as a new incarnation";
        int Restarts() => _nodes.Lines("lonely").Count(l => l.Contains(Again));
        int Listens() => _nodes.Lines("lonely").Count(l => l.Contains("Remoting started; listening on addresses") && l.Contains($"@127.0.0.1:{port}]"));
        // the third incarnation binds its port a moment after the second restart is logged: wait for both
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while ((Restarts() < 2 || Listens() < 3) && !p.HasExited && DateTime.UtcNow < deadline)
            await Task.Delay(250, ct);
        Assert.False(p.HasExited, $"the node exited ({(p.HasExited ? p.ExitCode : 0)}):\n" + _nodes.Tails());
        Assert.True(Restarts() >= 2, "no second incarnation:\n" + _nodes.Tails());
        // each incarnation bound the same port again
        Assert.True(Listens() >= 3, "the incarnations did not all listen on the same port:\n" + _nodes.Tails());
    }

    public void Dispose() => _nodes.Dispose();
}
