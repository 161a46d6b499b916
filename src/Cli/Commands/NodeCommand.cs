using HiggsCluster.Cli.Grammar;
using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using HiggsCluster.Cli.Node;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace HiggsCluster.Cli.Commands;

/// <summary>Runs one cluster node until SIGTERM/Ctrl-C (graceful leave) or until the cluster downs it.</summary>
public static class NodeCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var options = NodeOptions.From(new ConfigurationBuilder().AddEnvironmentVariables("HIGGS_").Build(), args);
        if (args.Get("gpus") is { } gpus) return GpuNode.Run(args, options, gpus, stdout, stderr);
        return RunHost(options, stdout, stderr);
    }

    internal static int RunHost(NodeOptions options, TextWriter stdout, TextWriter stderr)
    {
        if (options.Threads > 0) TorchSharp.torch.set_num_threads(options.Threads);
        var cvd = Environment.GetEnvironmentVariable("CUDA_VISIBLE_DEVICES");
        stderr.WriteLine($"higgs node: {string.Join(',', options.Roles)} on {options.Host}:{options.Port}, seeds {string.Join(',', options.Seeds)}" +
                         (cvd is null ? "" : $", CUDA_VISIBLE_DEVICES={cvd}"));
        while (true)
        {
            var (system, code) = RunIncarnation(options, stdout, stderr);
            // a join that got no answer in time: classic remoting can keep a broken link to an address whose previous
            // incarnation died, and a new incarnation (a new UID) makes every peer drop it; the port is the same
            if (CoordinatedShutdown.Get(system).ShutdownReason is not CoordinatedShutdown.ClusterJoinUnsuccessfulReason) return code;
            stderr.WriteLine($"higgs node: no seed accepted the join within {options.JoinTimeout.TotalSeconds:0} s; starting again as a new incarnation");
            options = options with { Incarnation = options.Incarnation + 1 };
        }
    }

    private static (ActorSystem System, int Code) RunIncarnation(NodeOptions options, TextWriter stdout, TextWriter stderr)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Configuration.AddEnvironmentVariables("HIGGS_");
        builder.Logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddAkka(options.SystemName, (b, _) => b.AddHiggsNode(options, stdout).AddHiggsRoleActors(options));
        using var host = builder.Build();
        // Start and wait rather than Run: Run disposes the host, and the shutdown reason is read from its actor system after
        host.Start();
        var system = host.Services.GetRequiredService<ActorSystem>();
        host.WaitForShutdown();
        return (system, ExitOf(system, options, stderr));
    }

    /// <summary>
    /// A node the cluster downed (the split-brain resolver after it was unreachable, or `cluster down`) stops like one
    /// that left, but it did not mean to: it says so and exits <see cref="ErrorExit.Downed"/>, so a supervisor or a
    /// person sees it (a silent 0 hid a healthy loader downed on a loaded machine).
    /// </summary>
    public static int ExitOf(ActorSystem system, NodeOptions options, TextWriter stderr)
    {
        var reason = CoordinatedShutdown.Get(system).ShutdownReason;
        if (IsTlsHandshakeFailure(reason))
        {
            stderr.WriteLine($"higgs: node {string.Join(',', options.Roles)} on {options.Host}:{options.Port} stopped: {reason} " +
                             "(a peer refused this node's certificate, or showed one this node does not trust: every node needs a certificate " +
                             "of the cluster CA, see `higgs cluster certs`); restart it to try again");
            return ErrorExit.TlsRefused;
        }
        // the cluster stopped this node although nobody stopped it here (a `cluster leave`): say which
        if (reason is CoordinatedShutdown.ClusterLeavingReason)
            stderr.WriteLine($"higgs: node {string.Join(',', options.Roles)} on {options.Host}:{options.Port} stopped by the cluster ({reason.GetType().Name})");
        if (reason is not CoordinatedShutdown.ClusterDowningReason) return 0;
        stderr.WriteLine($"higgs: node {string.Join(',', options.Roles)} on {options.Host}:{options.Port} was downed by the cluster " +
                         $"(unreachable for longer than --heartbeat-pause {options.HeartbeatPause.TotalSeconds:0.###} s plus --stable-after, or `cluster down`); restart it to rejoin");
        return ErrorExit.Downed;
    }

    /// <summary>
    /// Akka's TLS transport runs a coordinated shutdown when a handshake this node started fails. Its reason type is
    /// internal to Akka.Remote, so it is known by name (a test fails if Akka renames it). Whether a refused node sees
    /// the failure during its handshake (and stops) or just after it (and retries) is a race of TLS 1.3, where the
    /// server checks the client's certificate after the client considers the handshake done.
    /// </summary>
    public static bool IsTlsHandshakeFailure(CoordinatedShutdown.Reason? reason) =>
        reason?.GetType().FullName == "Akka.Remote.Transport.DotNetty.TlsHandshakeFailureReason";
}
