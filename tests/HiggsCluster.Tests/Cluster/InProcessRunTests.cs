using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.Messages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// In-process mode end to end: coordinator singleton, a loader and two workers in one ActorSystem move plans,
/// batches and acks, form the TCP ring, all-reduce and commit every step. The "model" is a 4-parameter linear toy
/// whose gradient depends on the sample ids, so a lost, duplicated or mis-routed sample changes the result.
/// </summary>
[Trait("Category", "Cluster")]
public class InProcessRunTests
{
    [Fact(Timeout = 60_000)]
    public async Task Two_workers_and_a_loader_train_every_planned_sample_once_with_identical_parameters()
    {
        var ct = TestContext.Current.CancellationToken;
        int port = LocalPorts.Next();
        var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles }.Validate();
        var r0 = new ToyCluster.ToyRunner();
        var r1 = new ToyCluster.ToyRunner();
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b
            .AddHiggsNode(node)
            .AddDataLoader(new ToyCluster.IdBatches(13), new DataLoaderOptions { Window = 2 })
            .AddGpuWorker<CoordinatorKey>(r0, new GpuWorkerOptions { Name = "w0" })
            .AddGpuWorker<CoordinatorKey>(r1, new GpuWorkerOptions { Name = "w1" }))).Build();
        await host.StartAsync(ct);
        try
        {
            var registry = host.Services.GetRequiredService<ActorRegistry>();
            var coordinator = await registry.GetAsync<CoordinatorKey>(ct);
            var spec = ToyCluster.Spec("toy", ranks: 2, micro: 1, accum: 2, epochs: 2, shards: 3, startWorkers: 2, save: 3);
            Assert.Equal(new RunAccepted("toy"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));

            RunStatus st;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
            do
            {
                await Task.Delay(250, ct);
                st = await coordinator.Ask<RunStatus>(new GetRunStatus("toy"), TimeSpan.FromSeconds(5), ct);
            } while (st.Phase is not (RunPhase.Completed or RunPhase.Failed) && DateTime.UtcNow < deadline);

            Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}");
            Assert.Equal(8, st.CommittedSteps); // 2 epochs × ceil(13/4)
            // the last commit reaches the workers after the coordinator already reports Completed
            for (int i = 0; i < 100 && (r0.Steps < 8 || r1.Steps < 8); i++) await Task.Delay(50, ct);
            Assert.Equal((8, 8), (r0.Steps, r1.Steps));
            var seen = r0.Seen.Concat(r1.Seen).ToList();
            foreach (var id in Enumerable.Range(0, 13)) Assert.Equal(2, seen.Count(x => x == id));
            Assert.Equal(26, seen.Count);
            Assert.NotEmpty(r0.Seen);
            Assert.NotEmpty(r1.Seen);
            Assert.Equal(r0.Params.Select(BitConverter.SingleToInt32Bits), r1.Params.Select(BitConverter.SingleToInt32Bits));
            Assert.NotEqual(1f, r0.Params[0]);
            Assert.Equal(3, r0.Checkpoints + r1.Checkpoints); // save_steps=3 over 8 steps: 3, 6 and the final one
            Assert.Equal(1, r0.FinalCheckpoints + r1.FinalCheckpoints);
            Assert.NotNull(r0.Planned);
            Assert.Equal(Enumerable.Range(0, 13).Select(i => (long)i), r0.Planned!.TrainIds.Order());
            var ledger = await coordinator.Ask<RunLedger>(new GetRunLedger("toy"), TimeSpan.FromSeconds(5), ct);
            Assert.Equal(8, ledger.Steps.Length);
            Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep));
            foreach (var epoch in new[] { 0, 1 })
                Assert.Equal(Enumerable.Range(0, 13).Select(i => (long)i), ledger.Steps.Where(e => e.Epoch == epoch).SelectMany(e => e.SampleIds).Order());
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>Either worker may leave: when rank 0 leaves, rank 0 of the new group is another worker.</summary>
    [Theory(Timeout = 60_000)]
    [InlineData("w1")]
    [InlineData("w0")]
    public async Task A_worker_leaving_mid_run_regroups_the_ring_and_the_survivor_finishes_every_step(string leaver)
    {
        var ct = TestContext.Current.CancellationToken;
        int port = LocalPorts.Next();
        var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles }.Validate();
        var r0 = new ToyCluster.ToyRunner { MicroStepMillis = 20 };
        var r1 = new ToyCluster.ToyRunner { MicroStepMillis = 20 };
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b
            .AddHiggsNode(node)
            .AddDataLoader(new ToyCluster.IdBatches(80))
            .AddGpuWorker<CoordinatorKey>(r0, new GpuWorkerOptions { Name = "w0" })
            .AddGpuWorker<CoordinatorKey>(r1, new GpuWorkerOptions { Name = "w1" }))).Build();
        await host.StartAsync(ct);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var spec = ToyCluster.Spec("leave", ranks: 2, micro: 1, accum: 2, shards: 2, startWorkers: 2, seed: 5);
            Assert.Equal(new RunAccepted("leave"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));

            RunStatus st;
            bool stopped = false;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(45);
            do
            {
                await Task.Delay(20, ct);
                st = await coordinator.Ask<RunStatus>(new GetRunStatus("leave"), TimeSpan.FromSeconds(5), ct);
                if (!stopped && st.CommittedSteps >= 2)
                {
                    system.ActorSelection("/user/" + leaver).Tell(PoisonPill.Instance);
                    stopped = true;
                }
            } while (st.Phase is not (RunPhase.Completed or RunPhase.Failed) && DateTime.UtcNow < deadline);

            Assert.True(stopped, $"no second step was committed: {st.Phase} step {st.CommittedSteps} '{st.Detail}', " +
                $"micro-batches seen {r0.Seen.Count}/{r1.Seen.Count}, optimizer steps {r0.Steps}/{r1.Steps}");
            Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}");
            Assert.Equal(20, st.CommittedSteps);
            var (survivor, gone) = leaver == "w1" ? (r0, r1) : (r1, r0);
            for (int i = 0; i < 100 && survivor.Steps < 20; i++) await Task.Delay(50, ct);
            Assert.Equal(20, survivor.Steps); // the survivor applied every committed step exactly once
            Assert.InRange(gone.Steps, 2, 19);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }
}
