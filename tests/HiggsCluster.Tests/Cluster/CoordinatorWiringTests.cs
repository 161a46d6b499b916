using Akka.Actor;
using Akka.Cluster;
using Akka.Cluster.Hosting;
using Akka.Hosting;
using Akka.Remote.Hosting;
using HiggsCluster.Coordinator.Actors;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// The coordinator actor's wiring to its worker roster, with probes standing for workers: a one-node cluster (the
/// actor reads membership), the in-memory journal, no loaders, so a submitted run waits and only the group traffic is
/// seen. What a worker says reaches <see cref="Coordinator.Groups.WorkerRoster{TRef}"/>, and a group it forms reaches
/// every member.
/// </summary>
public sealed class CoordinatorWiringTests(ITestOutputHelper output) : Akka.Hosting.TestKit.TestKit(nameof(CoordinatorWiringTests), output)
{
    private const string Run = "wired";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(15);
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    protected override void ConfigureAkka(AkkaConfigurationBuilder builder, IServiceProvider provider)
    {
        builder.WithRemoting("127.0.0.1", 0).WithClustering();
        CoordinatorJournal.InMemory.AddTo(builder);
    }

    private async Task<IActorRef> StartCoordinator()
    {
        var cluster = Akka.Cluster.Cluster.Get(Sys);
        await cluster.JoinAsync(cluster.SelfAddress, Ct);
        var coordinator = Sys.ActorOf(Props.Create(() => new CoordinatorActor(TimeSpan.FromSeconds(1), null)), "coordinator");
        var spec = ToyCluster.Spec(Run, ranks: 2, micro: 1, accum: 1, epochs: 1, shards: 1, save: 0, val: 0, maxSteps: 0, seed: 3);
        Assert.Equal(new RunAccepted(Run), await coordinator.Ask<object>(new SubmitRun(spec), Wait, Ct));
        return coordinator;
    }

    private static async Task<AllReduceGroup> NextGroup(Akka.TestKit.TestProbe worker) =>
        (AllReduceGroup)await worker.FishForMessageAsync(m => m is AllReduceGroup, Wait, cancellationToken: Ct);

    [Fact]
    public async Task A_broken_group_is_formed_again_with_the_same_members_once_whoever_reports_it()
    {
        var coordinator = await StartCoordinator();
        var a = CreateTestProbe();
        var b = CreateTestProbe();
        a.Send(coordinator, new RegisterWorker("w-a", "127.0.0.1", 7001, false));
        Assert.Single((await NextGroup(a)).Peers);
        b.Send(coordinator, new RegisterWorker("w-b", "127.0.0.1", 7002, false));
        var two = await NextGroup(b);
        Assert.Equal(two, await NextGroup(a));
        Assert.Equal(2, two.Peers.Length);

        // rank 1's all-reduce timed out: a new generation, same members and ranks, a new ring key
        b.Send(coordinator, new GroupBroken(Run, "w-b", two.Generation, "ring broken (Connection timed out)"));
        var again = await NextGroup(a);
        Assert.Equal(again, await NextGroup(b));
        Assert.True(again.Generation > two.Generation, $"generation {again.Generation} after {two.Generation}");
        Assert.Equal(two.Peers, again.Peers);
        Assert.NotEqual(two.RingKey, again.RingKey);

        // the other member's report of the same break, and a report about a group already replaced, form nothing
        a.Send(coordinator, new GroupBroken(Run, "w-a", two.Generation, "ring broken (Connection reset)"));
        await a.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(500), Ct);
        await b.ExpectNoMsgAsync(TimeSpan.FromMilliseconds(100), Ct);
    }
}
