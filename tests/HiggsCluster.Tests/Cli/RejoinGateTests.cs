using HiggsCluster.Cli.Node;
using Xunit;
using static HiggsCluster.Cli.Node.RejoinGate;

namespace HiggsCluster.Tests.Cli;

/// <summary>When a node restarted on its old host:port may join (the pure decision the seeds' rejoin gate answers with).</summary>
public sealed class RejoinGateTests
{
    private const string Seed = "akka.ssl.tcp://higgs@127.0.0.1:1000", Loader = "akka.ssl.tcp://higgs@127.0.0.1:1001", Worker = "akka.ssl.tcp://higgs@127.0.0.1:1002";

    // the worker's address had a member that was removed: it is coming back
    private static View ViewOf(IEnumerable<Member> members, params string[] seenBy) =>
        new(true, members.ToList(), seenBy.ToHashSet(), new HashSet<string> { Worker });

    private static Member M(string address, long uid, bool down = false, bool reachable = true) => new(address, uid, down, reachable);

    [Fact]
    public void An_old_incarnation_still_up_is_downed_and_the_newcomer_waits()
    {
        var old = M(Worker, 7, reachable: false);
        var d = Decide(ViewOf(new[] { M(Seed, 1), M(Loader, 2), old }, Seed, Loader), Worker, 8);
        Assert.False(d.Free);
        Assert.Equal(old, d.DownOld);
        Assert.Contains("uid 7", d.Reason);
    }

    [Fact]
    public void An_old_incarnation_already_down_is_waited_for_without_downing_it_again()
    {
        var d = Decide(ViewOf(new[] { M(Seed, 1), M(Worker, 7, down: true, reachable: false) }, Seed), Worker, 8);
        Assert.False(d.Free);
        Assert.Null(d.DownOld);
    }

    [Fact]
    public void After_the_removal_the_newcomer_waits_until_every_reachable_member_has_seen_it()
    {
        var members = new[] { M(Seed, 1), M(Loader, 2) };
        var behind = Decide(ViewOf(members, Seed), Worker, 8);
        Assert.False(behind.Free);
        Assert.Contains(Loader, behind.Reason);
        Assert.True(Decide(ViewOf(members, Seed, Loader), Worker, 8).Free);
    }

    [Fact]
    public void An_unreachable_or_downed_member_that_cannot_see_the_gossip_does_not_hold_the_join()
    {
        var members = new[] { M(Seed, 1), M(Loader, 2, reachable: false), M("akka.ssl.tcp://higgs@127.0.0.1:1003", 3, down: true) };
        Assert.True(Decide(ViewOf(members, Seed), Worker, 8).Free);
    }

    [Fact]
    public void A_first_join_does_not_wait_for_the_gossip_to_settle()
    {
        var members = new[] { M(Seed, 1), M(Loader, 2) };
        Assert.True(Decide(new View(true, members, new HashSet<string> { Seed }, new HashSet<string>()), Worker, 8).Free);
        Assert.False(Decide(ViewOf(members, Seed), Worker, 8).Free);
    }

    [Fact]
    public void The_same_incarnation_asking_again_is_free_and_nobody_is_downed()
    {
        var d = Decide(ViewOf(new[] { M(Seed, 1), M(Worker, 8) }, Seed), Worker, 8);
        Assert.True(d.Free);
        Assert.Null(d.DownOld);
    }

    [Fact]
    public void A_seed_that_is_not_a_member_yet_leaves_the_join_to_akka()
    {
        var d = Decide(new View(false, Array.Empty<Member>(), new HashSet<string>(), new HashSet<string>()), Worker, 8);
        Assert.True(d.Free);
    }
}

/// <summary>The gate actor answers only about the asker's own address, so nobody gets another member downed through it.</summary>
[Trait("Category", "Cluster")]
public sealed class RejoinGateActorTests
{
    [Fact]
    public async Task A_query_about_an_address_the_asker_does_not_hold_is_refused_and_downs_nobody()
    {
        var config = Akka.Configuration.ConfigurationFactory.ParseString(
            "akka.actor.provider = cluster\nakka.remote.dot-netty.tcp.hostname = 127.0.0.1\nakka.remote.dot-netty.tcp.port = 0\nakka.loglevel = ERROR");
        using var system = Akka.Actor.ActorSystem.Create("gate", config);
        var cluster = Akka.Cluster.Cluster.Get(system);
        var up = new TaskCompletionSource();
        cluster.RegisterOnMemberUp(() => up.TrySetResult());
        cluster.Join(cluster.SelfAddress);
        await up.Task.WaitAsync(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken);
        var gate = system.ActorOf(Akka.Actor.Props.Create(() => new RejoinGateActor()), RejoinGateActor.Name);

        // the asker's own address is the local one, so it may not ask about the (only) member's remote address
        var answer = await Akka.Actor.Futures.Ask<HiggsCluster.Messages.RejoinAnswer>(gate,
            new HiggsCluster.Messages.RejoinQuery(cluster.SelfAddress.ToString(), cluster.SelfUniqueAddress.Uid + 1), TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken);
        Assert.False(answer.Free);
        Assert.Contains("asked about", answer.Reason);
        await Task.Delay(500, TestContext.Current.CancellationToken);
        Assert.Equal(Akka.Cluster.MemberStatus.Up, cluster.SelfMember.Status);
        await Akka.Actor.CoordinatedShutdown.Get(system).Run(Akka.Actor.CoordinatedShutdown.ClrExitReason.Instance);
    }
}
