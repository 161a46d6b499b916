using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.DataLoaderNode.Actors;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The loader actor's wiring to its pure parts (<see cref="DataLoaderNode.Serving.LoaderGroups{TRef}"/>,
/// <see cref="DataLoaderNode.Serving.ServingWindow"/>), with probes for the coordinator and the workers and the toy
/// batch builder: plans and credits come in, batches go out only to the worker that pulled for their generation,
/// and an acknowledged batch is gone.
/// </summary>
public sealed class DataLoaderWiringTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(DataLoaderWiringTests), output)
{
    private const string Run = "loaded";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Quiet = TimeSpan.FromMilliseconds(300);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly ToyCluster.IdBatches _builder = new(8);

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) { }

    private async Task<(IActorRef Loader, Akka.TestKit.TestProbe Coordinator)> Start(long maxMessageBytes = 1 << 20)
    {
        var loader = Sys.ActorOf(Props.Create(() => new DataLoaderActor(_builder, 2, maxMessageBytes, null)), DataLoaderActor.Name);
        var coordinator = CreateTestProbe();
        var spec = ToyCluster.Spec(Run, ranks: 1, micro: 1, accum: 2, shards: 1);
        coordinator.Send(loader, new AssignShards(Run, 1, 1, new[] { 0 }, spec));
        var prepared = await coordinator.ExpectMsgAsync<ShardsPrepared>(Wait, cancellationToken: Ct);
        Assert.Equal(Enumerable.Range(0, 8).Select(i => (long)i), prepared.UsableIds);
        return (loader, coordinator);
    }

    private static PlanMicroBatch Plan(long generation, long step, int micro, params long[] ids) => new(Run, generation, 0, step, 0, micro, ids);

    [Fact]
    public async Task Batches_go_in_plan_order_against_credits_and_an_acknowledged_one_is_not_sent_again()
    {
        var (loader, coordinator) = await Start();
        var worker = CreateTestProbe();
        coordinator.Send(loader, Plan(1, 0, 0, 3));
        coordinator.Send(loader, Plan(1, 0, 1, 5));
        await worker.ExpectNoMsgAsync(Quiet, Ct); // built, but nobody asked

        worker.Send(loader, new BatchDemand(Run, 1, 0, 1));
        var first = await worker.ExpectMsgAsync<BatchDelivery>(Wait, cancellationToken: Ct);
        Assert.Equal((0L, 0), (first.Step, first.Micro));
        Assert.Equal(new long[] { 3 }, first.SampleIds);
        await worker.ExpectNoMsgAsync(Quiet, Ct); // one credit, one batch

        worker.Send(loader, new BatchAck(Run, 0, 0, 0, 1));
        worker.Send(loader, new BatchDemand(Run, 1, 0, 1));
        var second = await worker.ExpectMsgAsync<BatchDelivery>(Wait, cancellationToken: Ct);
        Assert.Equal((0L, 1), (second.Step, second.Micro));
        worker.Send(loader, new BatchDemand(Run, 1, 0, 1));
        await worker.ExpectNoMsgAsync(Quiet, Ct); // micro 0 was acknowledged: it is gone, not sent again
        Assert.Equal(2, _builder.Builds);
    }

    [Fact]
    public async Task A_newer_group_takes_the_rank_and_the_old_worker_gets_none_of_its_batches()
    {
        var (loader, coordinator) = await Start();
        var old = CreateTestProbe();
        var fresh = CreateTestProbe();
        old.Send(loader, new BatchDemand(Run, 1, 0, 2));
        coordinator.Send(loader, Plan(1, 0, 0, 1));
        Assert.Equal(1, (await old.ExpectMsgAsync<BatchDelivery>(Wait, cancellationToken: Ct)).Generation);

        // generation 2: rank 0 is another worker; its credits may come before the new plan does
        fresh.Send(loader, new BatchDemand(Run, 2, 0, 2));
        coordinator.Send(loader, Plan(2, 0, 0, 1));
        var again = await fresh.ExpectMsgAsync<BatchDelivery>(Wait, cancellationToken: Ct);
        Assert.Equal((2L, 0L, 0), (again.Generation, again.Step, again.Micro));

        // the old worker's late credits are refused: the next batch still goes to the new one
        old.Send(loader, new BatchDemand(Run, 1, 0, 2));
        coordinator.Send(loader, Plan(2, 0, 1, 2));
        Assert.Equal(1, (await fresh.ExpectMsgAsync<BatchDelivery>(Wait, cancellationToken: Ct)).Micro);
        await old.ExpectNoMsgAsync(Quiet, Ct);
    }

    [Fact]
    public async Task A_batch_over_the_remoting_frame_is_reported_to_its_worker_not_dropped()
    {
        var (loader, coordinator) = await Start(maxMessageBytes: 16);
        var worker = CreateTestProbe();
        worker.Send(loader, new BatchDemand(Run, 1, 0, 1));
        coordinator.Send(loader, Plan(1, 0, 0, 4, 6));
        var failed = await worker.ExpectMsgAsync<BatchFailed>(Wait, cancellationToken: Ct);
        Assert.Equal((Run, 0L, 0, 0), (failed.RunId, failed.Step, failed.Rank, failed.Micro));
        Assert.Contains("exceeds the 16-byte remoting frame", failed.Reason);
    }
}
