using HiggsCluster.Cli.Node;
using System.Diagnostics;
using HiggsCluster.Tests.Harness;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>Real <c>higgs node</c> processes on 127.0.0.1: formation, then a graceful leave of each.</summary>
[Trait("Category", "Cluster")]
public sealed class NodeProcessTests : IDisposable
{
    private readonly HiggsProcesses _nodes = new();
    private readonly string _root = Directory.CreateTempSubdirectory("higgs-nodes-").FullName;

    private Process Start(string roles, int port, string seeds) =>
        _nodes.Start(port.ToString(), "node", "--role", roles, "--port", port.ToString(), "--seeds", seeds, "--journal", $"sqlite:{Path.Combine(_root, "journal.db")}");

    private bool SawUp(int port, int n) => _nodes.Lines(port.ToString()).Any(l => l.StartsWith("HIGGS_NODE ", StringComparison.Ordinal) && l.Contains($" up={n} "));

    private string Tail(int port) => string.Join("\n", _nodes.Lines(port.ToString()).TakeLast(15));

    [Fact(Timeout = 90_000)]
    public async Task Three_node_processes_form_a_cluster_and_leave_gracefully()
    {
        var ct = TestContext.Current.CancellationToken;
        int[] ports = { LocalPorts.Next(), LocalPorts.Next(), LocalPorts.Next() };
        string seeds = $"127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}";
        var nodes = new[]
        {
            Start("coordinator", ports[0], seeds),
            Start("coordinator,loader", ports[1], seeds),
            Start("worker", ports[2], seeds),
        };
        var sw = Stopwatch.StartNew();
        while (!ports.All(p => SawUp(p, 3)))
        {
            if (sw.Elapsed > TimeSpan.FromSeconds(50))
                Assert.Fail("cluster did not form in 50 s:\n" + string.Join("\n----\n", ports.Select(Tail)));
            foreach (var (p, i) in nodes.Select((p, i) => (p, i)))
                if (p.HasExited) Assert.Fail($"node {ports[i]} exited early ({p.ExitCode}):\n{Tail(ports[i])}");
            await Task.Delay(200, ct);
        }

        // youngest first, so the singleton never has to hand over to a node that is already gone
        for (int i = nodes.Length - 1; i >= 0; i--)
        {
            using (var kill = Process.Start("kill", $"-TERM {nodes[i].Id}")) await kill.WaitForExitAsync(ct);
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
            cts.CancelAfter(TimeSpan.FromSeconds(20));
            try { await nodes[i].WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { Assert.Fail($"node {ports[i]} did not exit within 20 s of SIGTERM:\n{Tail(ports[i])}"); }
            Assert.Equal(0, nodes[i].ExitCode);
            if (i > 0)
            {
                // the survivors saw it leave
                var deadline = Stopwatch.StartNew();
                while (!SawUp(ports[0], i) && deadline.Elapsed < TimeSpan.FromSeconds(15)) await Task.Delay(200, ct);
                Assert.True(SawUp(ports[0], i), $"node {ports[0]} never saw {i} members up:\n{Tail(ports[0])}");
            }
        }
    }

    public void Dispose()
    {
        _nodes.Dispose();
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
