using HiggsCluster.Tests.Harness;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.Cli.Node;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.Messages;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The NCCL path of the real coordinator and worker actors, on CPU: workers that report CUDA, runners that hand out
/// "device" buckets and an in-memory NCCL stand-in (<see cref="FakeNccl"/>) in place of libnccl. What is checked is the
/// wiring: who creates the id, who gets it, who joins with which rank, that steps reduce through the communicator and
/// that a membership change aborts it and forms a new one with a new id.
/// </summary>
[Trait("Category", "Cluster")]
public class NcclWiringTests
{
    [Fact(Timeout = 90_000)]
    public async Task A_cuda_run_reduces_over_nccl_with_rank_0s_id_and_a_leaving_worker_reforms_it_with_a_new_id()
    {
        var ct = TestContext.Current.CancellationToken;
        int port = LocalPorts.Next();
        var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = NodeOptions.KnownRoles }.Validate();
        var nccl = new FakeNccl();
        var r0 = new ToyCluster.ToyRunner { FakeCuda = true, MicroStepMillis = 20 };
        var r1 = new ToyCluster.ToyRunner { FakeCuda = true, MicroStepMillis = 20 };
        using var host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b
            .AddHiggsNode(node)
            .AddDataLoader(new ToyCluster.IdBatches(80))
            .AddGpuWorker<CoordinatorKey>(r0, new GpuWorkerOptions { Name = "w0", Backends = nccl.For("w0") })
            .AddGpuWorker<CoordinatorKey>(r1, new GpuWorkerOptions { Name = "w1", Backends = nccl.For("w1") }))).Build();
        await host.StartAsync(ct);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            var coordinator = await host.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var toy = ToyCluster.Spec("nccl", ranks: 2, micro: 1, accum: 2, shards: 2, startWorkers: 2, seed: 5);
            var spec = toy with { Options = toy.Options with { Device = "cuda:1" } };
            Assert.Equal(new RunAccepted("nccl"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));

            // w0 sorts first, so it is rank 0 of the two-worker group; w1 leaves and w0 forms the next group alone
            RunStatus st;
            bool stopped = false;
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            do
            {
                await Task.Delay(20, ct);
                st = await coordinator.Ask<RunStatus>(new GetRunStatus("nccl"), TimeSpan.FromSeconds(5), ct);
                if (!stopped && st.CommittedSteps >= 2)
                {
                    system.ActorSelection("/user/w1").Tell(PoisonPill.Instance);
                    stopped = true;
                }
            } while (st.Phase is not (RunPhase.Completed or RunPhase.Failed) && DateTime.UtcNow < deadline);

            Assert.True(stopped, $"no second step was committed: {st.Phase} step {st.CommittedSteps} '{st.Detail}'");
            Assert.True(st.Phase == RunPhase.Completed, $"run ended as {st.Phase} at step {st.CommittedSteps}: {st.Detail}; {nccl.Describe()}");
            Assert.Equal(20, st.CommittedSteps);
            for (int i = 0; i < 100 && r0.Steps < 20; i++) await Task.Delay(50, ct);
            Assert.Equal(20, r0.Steps);

            var creations = nccl.Creations.ToArray();
            var joins = nccl.Joins.ToArray();
            Assert.Equal(0, nccl.RingsFormed); // every group of a CUDA run whose workers all have CUDA went to NCCL
            Assert.All(joins, j => Assert.Equal("cuda:1", j.Device));
            Assert.Equal(creations.Length, creations.Select(c => Convert.ToHexString(c.Id)).Distinct().Count()); // a new id each time
            // every id was joined only with that id's creator as rank 0, and all joins of one id share generation and world
            foreach (var c in creations)
            {
                var same = joins.Where(j => j.Id.SequenceEqual(c.Id)).ToList();
                Assert.All(same, j => Assert.Equal(j.Worker == c.Worker, j.Rank == 0));
                Assert.True(same.Select(j => (j.Generation, j.World)).Distinct().Count() <= 1, nccl.Describe()); // none: superseded before handed out
            }
            Assert.All(joins, j => Assert.Contains(creations, c => c.Id.SequenceEqual(j.Id))); // nobody joined an id rank 0 did not create

            // the two-worker group: w0 (rank 0) created the id, the coordinator handed the same id to w1 (rank 1)
            var pair = joins.Where(j => j.World == 2).GroupBy(j => j.Generation).Single(g => g.Count() == 2).ToList();
            Assert.Equal(new[] { ("w0", 0), ("w1", 1) }, pair.OrderBy(j => j.Rank).Select(j => (j.Worker, j.Rank)));
            Assert.True(pair[0].Id.SequenceEqual(pair[1].Id));
            Assert.Equal("w0", creations.Single(c => c.Id.SequenceEqual(pair[0].Id)).Worker);
            long pairGen = pair[0].Generation;

            // after w1 left: w0 is rank 0 of a later one-worker generation, with a new id it created
            var alone = joins.Last();
            Assert.Equal(("w0", 0, 1), (alone.Worker, alone.Rank, alone.World));
            Assert.True(alone.Generation > pairGen);
            Assert.Equal("w0", creations.Single(c => c.Id.SequenceEqual(alone.Id)).Worker);
            Assert.False(alone.Id.SequenceEqual(pair[0].Id));

            // the survivor aborted (never disposed) the two-worker communicator
            Assert.Contains(nccl.Ends, e => e is { Worker: "w0", World: 2, Aborted: true } && e.Generation == pairGen);
            Assert.DoesNotContain(nccl.Ends, e => !e.Aborted);

            // the steps were reduced through the stand-in, from device buckets
            Assert.True(nccl.Reductions.GetValueOrDefault(2) >= 2, $"two-rank reductions: {nccl.Reductions.GetValueOrDefault(2)}");
            Assert.True(nccl.Reductions.GetValueOrDefault(1) >= 1, $"one-rank reductions: {nccl.Reductions.GetValueOrDefault(1)}");
            // (a step in flight when w0 left may have been reduced once more in the new group)
            Assert.InRange(nccl.Reductions.GetValueOrDefault(2) + nccl.Reductions.GetValueOrDefault(1), 20, 22);
            Assert.True(r0.DeviceBuckets >= 20, $"device buckets of the survivor: {r0.DeviceBuckets}");
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }
}
