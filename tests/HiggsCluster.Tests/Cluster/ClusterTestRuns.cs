using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Training.Engine;
using Microsoft.Extensions.Hosting;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// What the multi-process cluster tests share: the single-process reference run their adapters are compared with,
/// and a coordinator-only node hosted in the test process as the cluster's seed.
/// </summary>
public static class ClusterTestRuns
{
    public static TrainingOutcome SingleProcessRun(TrainOptions o)
    {
        using var session = TrainingSession.Open(o, TextWriter.Null);
        return new TrainingRun(session, new LineProgress(TextWriter.Null, 1000)).Run();
    }

    /// <summary>A node with the coordinator role on 127.0.0.1:<paramref name="seedPort"/>, its own seed (built, not started).</summary>
    public static IHost CoordinatorHost(int seedPort)
    {
        var node = new NodeOptions { Port = seedPort, Seeds = new[] { $"127.0.0.1:{seedPort}" }, Roles = new[] { "coordinator" }, RemoteTls = TestClusterCerts.Remote }.Validate();
        return new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b.AddHiggsNode(node))).Build();
    }
}
