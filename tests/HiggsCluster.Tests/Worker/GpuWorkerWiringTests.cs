using System.Net;
using Akka.Actor;
using Akka.Hosting;
using HiggsCluster.GpuWorker.Actors;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.GpuWorker.HandOvers;
using HiggsCluster.GpuWorker.Run;
using HiggsCluster.Messages;
using HiggsCluster.Tests.Cluster;
using Xunit;

namespace HiggsCluster.Tests.Worker;

/// <summary>
/// The worker actor's wiring, with probes for the coordinator and a loader and the toy engine: what goes in reaches
/// <see cref="WorkerRun"/>, and its effects come out as the messages and engine calls they stand for. One actor system
/// per test, no cluster: the loader is announced as <see cref="LoaderUp"/>, the all-reduce of a one-rank group is a no-op.
/// </summary>
public sealed class GpuWorkerWiringTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(GpuWorkerWiringTests), output)
{
    private const string Run = "wired";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(10);
    private readonly ToyCluster.ToyRunner _runner = new();
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider) { }

    private sealed class SoloRing(long generation) : IGradientAllReduce
    {
        public int Rank => 0;
        public int WorldSize => 1;
        public long Generation => generation;
        public bool AcceptsDeviceMemory => false;
        public void AllReduceSum(GradientBucket bucket) { } // one rank: the sum is its own gradients
        public void Abort() { }
        public void Dispose() { }
    }

    private sealed class SoloBackends : IAllReduceBackends
    {
        public bool NcclUsable => false;
        public byte[] CreateNcclId() => throw new NotSupportedException("no NCCL in wiring tests");
        public IGradientAllReduce JoinNccl(byte[] id, int rank, int world, long generation, string device) => throw new NotSupportedException("no NCCL in wiring tests");
        public Task<IGradientAllReduce> ConnectRing(RingListener listener, int rank, IReadOnlyList<IPEndPoint> peers, long generation, byte[] key, TimeSpan timeout,
            Action<string>? refused = null) => Task.FromResult<IGradientAllReduce>(new SoloRing(generation));
    }

    /// <summary>Stands where the worker looks for a node's loader (/user/data-loader), passing everything to a probe.</summary>
    private sealed class Forward : ReceiveActor
    {
        public Forward(IActorRef to) => ReceiveAny(m => to.Forward(m));
    }

    private (IActorRef Worker, Akka.TestKit.TestProbe Coordinator, Akka.TestKit.TestProbe Loader) Start()
    {
        var coordinator = CreateTestProbe();
        var loader = CreateTestProbe();
        Sys.ActorOf(Props.Create(() => new Forward(loader.Ref)), "data-loader");
        var worker = Sys.ActorOf(Props.Create(() => new GpuWorkerActor(_runner, coordinator.Ref, "127.0.0.1", 2, Wait, null, new SoloBackends())), "gpu-worker");
        return (worker, coordinator, loader);
    }

    private string LocalAddress => ((ExtendedActorSystem)Sys).Provider.DefaultAddress.ToString();

    private static AllReduceGroup Solo(RegisterWorker me, long generation) =>
        new(Run, generation, new[] { new GroupMember(0, me.WorkerId, me.RingHost, me.RingPort) }, null) { RingKey = new byte[32] };

    private static BatchDelivery Batch(long generation, long step, params long[] ids) =>
        new(Run, generation, 0, step, 0, 0, ids, new[] { new NamedTensor("sample_ids", TensorData.FromLongs(ids, ids.Length)) });

    [Fact]
    public async Task A_step_goes_from_the_loaders_batch_to_the_coordinators_report_and_its_commit_is_applied_once()
    {
        var (worker, coordinator, loader) = Start();
        var me = await coordinator.ExpectMsgAsync<RegisterWorker>(Wait, cancellationToken: Ct);
        Assert.Equal((null, 0L), (me.RunId, me.AppliedSteps));

        worker.Tell(Solo(me, 1));
        worker.Tell(new LoaderUp(LocalAddress));
        Assert.Equal(new BatchDemand(Run, 1, 0, 2), await loader.ExpectMsgAsync<BatchDemand>(Wait, cancellationToken: Ct));

        coordinator.Send(worker, new StartStep(Run, 1, 0, 0, 1));
        loader.Send(worker, Batch(1, 0, 3, 5));
        Assert.Equal(new BatchAck(Run, 0, 0, 0, 1), await loader.ExpectMsgAsync<BatchAck>(Wait, cancellationToken: Ct));
        Assert.Equal(new BatchDemand(Run, 1, 0, 1), await loader.ExpectMsgAsync<BatchDemand>(Wait, cancellationToken: Ct)); // the credit back
        var done = (StepDone)await coordinator.FishForMessageAsync(m => m is StepDone, Wait, cancellationToken: Ct);
        Assert.Equal((Run, 1L, 0L, 0), (done.RunId, done.Generation, done.Step, done.Rank));
        Assert.Equal(new long[] { 3, 5 }, _runner.Seen);

        coordinator.Send(worker, new StepCommitted(Run, 0, done.Stats));
        coordinator.Send(worker, new StepCommitted(Run, 0, done.Stats)); // sent again after a fail-over
        worker.Tell(new RegisterTick());
        var again = (RegisterWorker)await coordinator.FishForMessageAsync(m => m is RegisterWorker { AppliedSteps: > 0 }, Wait, cancellationToken: Ct);
        Assert.Equal((Run, 1L), (again.RunId, again.AppliedSteps));
        Assert.Equal(1, _runner.Steps);
    }

    [Fact]
    public async Task A_batch_of_another_generation_is_released_at_the_loader_and_never_trained_on()
    {
        var (worker, coordinator, loader) = Start();
        var me = await coordinator.ExpectMsgAsync<RegisterWorker>(Wait, cancellationToken: Ct);
        worker.Tell(Solo(me, 2));
        worker.Tell(new LoaderUp(LocalAddress));
        await loader.ExpectMsgAsync<BatchDemand>(Wait, cancellationToken: Ct);

        loader.Send(worker, Batch(1, 0, 7));
        Assert.Equal(new BatchAck(Run, 0, 0, 0, 1), await loader.ExpectMsgAsync<BatchAck>(Wait, cancellationToken: Ct));
        coordinator.Send(worker, new StartStep(Run, 1, 0, 0, 1)); // of the old generation too
        worker.Tell(new RegisterTick());
        await coordinator.FishForMessageAsync(m => m is RegisterWorker { RunId: Run }, Wait, cancellationToken: Ct);
        await loader.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(200), Ct); // no credit back for a batch it did not keep
        Assert.Empty(_runner.Seen);
    }

    [Fact]
    public async Task A_peers_state_that_overtook_the_group_message_is_installed_once_the_group_names_the_run()
    {
        var (worker, coordinator, _) = Start();
        var me = await coordinator.ExpectMsgAsync<RegisterWorker>(Wait, cancellationToken: Ct);
        var state = new[] { new NamedTensor("params", TensorData.FromFloats(new float[] { 9, 8, 7, 6 }, 4)) };
        foreach (var chunk in HandOverChunks.Split(Run, 4, 3, state)) worker.Tell(chunk);
        worker.Tell(Solo(me, 3));

        var loaded = (StateInstalled)await coordinator.FishForMessageAsync(m => m is StateInstalled, Wait, cancellationToken: Ct);
        Assert.Equal(new StateInstalled(Run, me.WorkerId, 4), loaded);
        Assert.Equal(new float[] { 9, 8, 7, 6 }, _runner.Params);
    }
}
