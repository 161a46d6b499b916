using HiggsCluster.Cli.Node;
using System.Net;
using System.Net.Sockets;
using HiggsCluster.Cli.Pbm;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// Why the CLI cannot reach a command host: nothing listening is a node that is not running (no TLS advice); a host
/// that hangs up on the plain request line is what a TLS command host does, and only then is --tls suggested.
/// </summary>
[Trait("Category", "Cli")]
public sealed class PbmConnectionTests
{
    [Fact]
    public void Nothing_listening_says_no_command_host_and_exits_3_without_tls_advice()
    {
        int port = LocalPorts.Next(); // this process's and nobody listens on it: connecting is refused
        var err = new StringWriter();
        Assert.Equal(ExitCodes.Unreachable, PbmCommand.Run(new[] { $"127.0.0.1:{port}", "cluster", "show" }, new StringWriter(), err));
        Assert.Contains($"no command host at 127.0.0.1:{port} (is the node running?", err.ToString());
        Assert.Contains("--cmd-port", err.ToString());
        Assert.DoesNotContain("tls", err.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_host_that_hangs_up_without_a_reply_gets_the_tls_advice()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        var ct = TestContext.Current.CancellationToken;
        var hangUp = Task.Run(async () => { using var c = await l.AcceptTcpClientAsync(ct); await Task.Delay(100, ct); }, ct);
        try
        {
            var err = new StringWriter();
            Assert.Equal(ExitCodes.Unreachable, PbmCommand.Run(new[] { $"127.0.0.1:{port}", "cluster", "show" }, new StringWriter(), err));
            Assert.Contains("closed the connection without a reply", err.ToString());
            Assert.Contains("--tls", err.ToString());
            await hangUp;
        }
        finally { l.Stop(); }
    }
}
