using HiggsCluster.Cli.Node;
using HiggsCluster.Tests.Harness;
using System.Runtime.InteropServices;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Cluster;
using Microsoft.Extensions.DependencyInjection;
using Xunit;

namespace HiggsCluster.Tests.Device;

/// <summary>`higgs node --role worker --gpus all`: a worker process per (injected) GPU joins the cluster, in GPU order.</summary>
[Trait("Category", "Device"), Trait("Category", "Process")]
public sealed class GpuNodeProcessTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "higgs-gpu-node-" + Guid.NewGuid().ToString("N"));
    private readonly HiggsProcesses _procs = new();

    [Fact(Timeout = 180_000)]
    public async Task A_worker_node_with_gpus_starts_one_worker_process_per_gpu_ranked_in_gpu_order()
    {
        var ct = TestContext.Current.CancellationToken;
        int seedPort = LocalPorts.Next();
        using var host = ClusterTestRuns.CoordinatorHost(seedPort);
        await host.StartAsync(ct);
        try
        {
            int port = TwoFreePorts();
            var env = new Dictionary<string, string?> { ["HIGGS_GPU_LIST"] = "4,0", ["CUDA_VISIBLE_DEVICES"] = null };
            var node = _procs.Start("node", env, "node", "--role", "worker", "--gpus", "all", "--port", port.ToString(),
                "--seeds", $"127.0.0.1:{seedPort}", "--log-dir", Path.Combine(_root, "logs"), "--threads", "1");
            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            Roster roster;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
            do
            {
                await Task.Delay(500, ct);
                Assert.False(node.HasExited, "the node exited:\n" + _procs.Tails(30));
                roster = await coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(10), ct);
            } while (roster.Workers.Length < 2 && DateTime.UtcNow < deadline);
            Assert.True(roster.Workers.Length == 2, $"{roster.Workers.Length} workers registered:\n{_procs.Tails(30)}");
            var byRank = roster.Workers.OrderBy(w => w.Rank).ToList();
            Assert.Contains($":{port}/", byRank[0].Path);
            Assert.Contains($":{port + 1}/", byRank[1].Path);
            Assert.Contains("CUDA_VISIBLE_DEVICES=4", File.ReadAllText(Path.Combine(_root, "logs", "worker-gpu4.log")));
            Assert.Contains("CUDA_VISIBLE_DEVICES=0", File.ReadAllText(Path.Combine(_root, "logs", "worker-gpu0.log")));
            Assert.Contains(_procs.Lines("node"), l => l.Contains($"worker process for GPU 4 on port {port} (CUDA_VISIBLE_DEVICES=4)"));

            // stopping the node stops its workers: they leave and the coordinator sees none
            Assert.Equal(0, Kill(node.Id, 15));
            Assert.True(node.WaitForExit(60_000), "the node did not stop on SIGTERM:\n" + _procs.Tails(30));
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            do
            {
                await Task.Delay(500, ct);
                roster = await coordinator.Ask<Roster>(GetRoster.Instance, TimeSpan.FromSeconds(10), ct);
            } while (roster.Workers.Length > 0 && DateTime.UtcNow < deadline);
            Assert.Empty(roster.Workers);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static int TwoFreePorts() => LocalPorts.Block(2);

    [DllImport("libc", EntryPoint = "kill")]
    private static extern int Kill(int pid, int signal);

    public void Dispose()
    {
        _procs.Dispose();
        try { Directory.Delete(_root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
