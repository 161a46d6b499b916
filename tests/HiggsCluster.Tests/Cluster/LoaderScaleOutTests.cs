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
/// Loaders scale independently: a loader node that joins a running run is given shards and serves batches; when it
/// leaves mid-run its shards and the batches it had not delivered go to the remaining loader, and the ledger still
/// shows every planned sample consumed exactly once. Two cluster nodes (ActorSystems) on 127.0.0.1, toy data and engine.
/// </summary>
[Trait("Category", "Cluster")]
public class LoaderScaleOutTests
{
    private static IHost Node(NodeOptions o, Action<AkkaConfigurationBuilder> extra) =>
        new HostBuilder().ConfigureServices(s => s.AddAkka(o.SystemName, (b, _) => { b.AddHiggsNode(o); extra(b); })).Build();

    private const int Samples = 800, Steps = Samples / 4;

    [Fact(Timeout = 120_000)]
    public async Task A_loader_joining_mid_run_takes_shards_and_one_leaving_mid_run_loses_nothing()
    {
        var ct = TestContext.Current.CancellationToken;
        int portA = LocalPorts.Next(), portB = LocalPorts.Next();
        var seeds = new[] { $"127.0.0.1:{portA}" };
        var a = new NodeOptions { Port = portA, Seeds = seeds, Roles = NodeOptions.KnownRoles }.Validate();
        var b = new NodeOptions { Port = portB, Seeds = seeds, Roles = new[] { "loader" } }.Validate();
        var loaderA = new ToyCluster.IdBatches(Samples);
        var loaderB = new ToyCluster.IdBatches(Samples);
        var w0 = new ToyCluster.ToyRunner { MicroStepMillis = 15 };
        var w1 = new ToyCluster.ToyRunner { MicroStepMillis = 15 };
        using var hostA = Node(a, x => x
            .AddDataLoader(loaderA, new DataLoaderOptions { Window = 2 })
            .AddGpuWorker<CoordinatorKey>(w0, new GpuWorkerOptions { Name = "w0" })
            .AddGpuWorker<CoordinatorKey>(w1, new GpuWorkerOptions { Name = "w1" }));
        using var hostB = Node(b, x => x.AddDataLoader(loaderB, new DataLoaderOptions { Window = 2 }));
        await hostA.StartAsync(ct);
        try
        {
            var coordinator = await hostA.Services.GetRequiredService<ActorRegistry>().GetAsync<CoordinatorKey>(ct);
            var spec = ToyCluster.Spec("scale", ranks: 2, micro: 1, accum: 2, shards: 6, startWorkers: 2, seed: 3);
            Assert.Equal(new RunAccepted("scale"), await coordinator.Ask<object>(new SubmitRun(spec), TimeSpan.FromSeconds(20), ct));

            async Task<RunStatus> Status() => await coordinator.Ask<RunStatus>(new GetRunStatus("scale"), TimeSpan.FromSeconds(5), ct);
            async Task<RunStatus> Until(Func<RunStatus, bool> done, string what)
            {
                var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
                RunStatus st;
                while (!done(st = await Status()))
                {
                    Assert.False(st.Phase is RunPhase.Failed or RunPhase.Stopped, $"run ended as {st.Phase}: {st.Detail}");
                    Assert.True(DateTime.UtcNow < deadline, $"{what}: still {st.Phase} at step {st.CommittedSteps} ({st.Detail})");
                    await Task.Delay(50, ct);
                }
                return st;
            }

            await Until(s => s.CommittedSteps >= 5, "first steps on one loader");
            Assert.Equal(0, loaderB.Prepares);
            await hostB.StartAsync(ct);
            var joined = await Until(_ => loaderB.Builds >= 4, "the new loader serving batches");
            Assert.True(joined.CommittedSteps < Steps - 100, "the run finished before the new loader could take part");
            Assert.Equal(1, loaderB.Prepares); // it was assigned shards (and read them) once

            int buildsA = loaderA.Builds;
            await hostB.StopAsync(ct);           // graceful leave mid-run
            Assert.True((await Status()).CommittedSteps < Steps, "the run finished before the loader had left");
            var end = await Until(s => s.Phase == RunPhase.Completed, "completion after the loader left");
            Assert.Equal(Steps, end.CommittedSteps); // 4 samples per step
            Assert.True(loaderA.Builds > buildsA, "the remaining loader took over the departed loader's shards");

            var ledger = await coordinator.Ask<RunLedger>(new GetRunLedger("scale"), TimeSpan.FromSeconds(5), ct);
            Assert.Equal(Enumerable.Range(0, Steps).Select(i => (long)i), ledger.Steps.Select(e => e.GlobalStep));
            Assert.Equal(Enumerable.Range(0, Samples).Select(i => (long)i), ledger.Steps.SelectMany(e => e.SampleIds).Order());
            // the workers trained every sample exactly once between them
            for (int i = 0; i < 100 && (w0.Steps < Steps || w1.Steps < Steps); i++) await Task.Delay(50, ct);
            Assert.Equal(Enumerable.Range(0, Samples).Select(i => (long)i), w0.Seen.Concat(w1.Seen).Order());
            Assert.Equal(w0.Params, w1.Params);
        }
        finally
        {
            await hostA.StopAsync(CancellationToken.None);
        }
    }
}
