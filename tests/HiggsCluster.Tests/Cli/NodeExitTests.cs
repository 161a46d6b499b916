using Akka.Actor;
using HiggsCluster.Cli;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Node;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>
/// How `higgs node` ends is read from its actor system's shutdown reason: a stop the node did not ask for is never a
/// silent 0. Akka's TLS transport stops a node whose outbound handshake fails with a reason type internal to
/// Akka.Remote; the node must recognise it (so a renamed type fails here, not in a cluster).
/// </summary>
public sealed class NodeExitTests
{
    private static readonly NodeOptions Options = new() { Roles = new[] { "worker" }, Host = "127.0.0.1", Port = 4711 };

    private static async Task<(int Code, string Err)> ExitAfter(CoordinatedShutdown.Reason reason)
    {
        using var system = ActorSystem.Create("node-exit");
        await CoordinatedShutdown.Get(system).Run(reason);
        var err = new StringWriter();
        return (NodeCommand.ExitOf(system, Options, err), err.ToString());
    }

    [Fact]
    public async Task A_node_stopped_by_a_failed_TLS_handshake_exits_4_with_one_line_naming_the_certificate()
    {
        var type = typeof(Akka.Remote.RemoteActorRefProvider).Assembly.GetType("Akka.Remote.Transport.DotNetty.TlsHandshakeFailureReason");
        Assert.NotNull(type);
        var reason = (CoordinatedShutdown.Reason)Activator.CreateInstance(type!, "TLS handshake failed on outbound connection to [127.0.0.1:4710]")!;
        Assert.True(NodeCommand.IsTlsHandshakeFailure(reason));

        var (code, err) = await ExitAfter(reason);
        Assert.Equal(ErrorExit.TlsRefused, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("127.0.0.1:4710", line);
        Assert.Contains("certificate", line);
        Assert.Contains("worker on 127.0.0.1:4711", line);
    }

    [Fact]
    public async Task A_node_that_left_exits_0_and_one_the_cluster_downed_exits_3()
    {
        Assert.Equal((0, ""), await ExitAfter(CoordinatedShutdown.ActorSystemTerminateReason.Instance));
        var (code, err) = await ExitAfter(CoordinatedShutdown.ClusterDowningReason.Instance);
        Assert.Equal(ErrorExit.Downed, code);
        Assert.Contains("downed", err);
        Assert.False(NodeCommand.IsTlsHandshakeFailure(CoordinatedShutdown.ClusterDowningReason.Instance));
    }
}
