using HiggsCluster.Coordinator.Groups;
using HiggsCluster.Messages;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The coordinator's worker registry, group generations and backend choice, without actors.</summary>
public class WorkerRosterTests
{
    private static RegisterWorker W(string id, bool cuda = false, int port = 7000) => new(id, "127.0.0.1", port, cuda);

    [Fact]
    public void A_changed_roster_proposes_a_group_that_takes_effect_with_a_newer_generation()
    {
        var r = WorkerRoster<string>.Empty.Register("n2/w", W("b", port: 2), "ref-b").Register("n1/w", W("a", port: 1), "ref-a");
        Assert.True(r.NeedsRegroup);
        Assert.Empty(r.Group);

        r = r.Formed(1);
        Assert.False(r.NeedsRegroup);
        Assert.Equal(new[] { new GroupMember(0, "a", "127.0.0.1", 1), new GroupMember(1, "b", "127.0.0.1", 2) }, r.Group);
        Assert.Equal(new[] { "a", "b" }, r.Members);
        Assert.Equal(new[] { "ref-a", "ref-b" }, r.ByRank);

        // the same registration again changes nothing; a new ring port does
        Assert.False(r.Register("n1/w", W("a", port: 1), "ref-a").NeedsRegroup);
        Assert.True(r.Register("n1/w", W("a", port: 9), "ref-a").NeedsRegroup);
        Assert.Throws<ArgumentException>(() => r.Formed(1));
    }

    [Fact]
    public void A_broken_group_is_formed_again_with_the_same_members_only_for_its_own_generation()
    {
        var r = WorkerRoster<string>.Empty.Register("n1/w", W("a", port: 1), "ref-a").Register("n2/w", W("b", port: 2), "ref-b").Formed(5);
        Assert.False(r.NeedsRegroup);
        Assert.False(WorkerRoster<string>.Empty.MustReform(0)); // no group yet
        Assert.False(r.MustReform(4));                          // a report about a group already replaced
        Assert.True(r.MustReform(5));
        var again = r.Formed(6);
        Assert.Equal(r.Group, again.Group);
        Assert.False(again.MustReform(5));                      // the second member's report of the same break
    }

    [Fact]
    public void Workers_leave_one_by_one_or_with_their_node()
    {
        var r = WorkerRoster<string>.Empty
            .Register("akka://h@n1:1/user/w0", W("a"), "a").Register("akka://h@n1:1/user/w1", W("b"), "b")
            .Register("akka://h@n2:1/user/w0", W("c"), "c").Formed(4);

        Assert.Null(r.Without("akka://h@n9:1/user/w0"));
        Assert.Equal(new[] { "a", "c" }, r.Without("akka://h@n1:1/user/w1")!.ByRank);
        Assert.Null(r.WithoutNode("akka://h@n3:1"));
        var left = r.WithoutNode("akka://h@n1:1")!;
        Assert.Equal(new[] { "c" }, left.ByRank);
        Assert.True(left.NeedsRegroup);
        Assert.Equal(new[] { "c" }, left.Formed(5).Members);
    }

    [Fact]
    public void Generations_keep_growing_across_coordinators()
    {
        var r = WorkerRoster<string>.Empty.Recovered(7).Recovered(3);
        Assert.Equal(7, r.Generation);
        Assert.Throws<ArgumentException>(() => r.Register("k", W("a"), "a").Formed(7));
        Assert.Equal(8, r.Register("k", W("a"), "a").Formed(8).Generation);
    }

    [Fact]
    public void Nccl_only_when_the_run_is_on_cuda_and_every_rank_can_join()
    {
        var both = WorkerRoster<string>.Empty.Register("1", W("a", cuda: true), "a").Register("2", W("b", cuda: true), "b").Formed(1);
        Assert.Equal(AllReduceBackend.Nccl, both.Backend("cuda").Backend);
        Assert.Equal(AllReduceBackend.TcpRing, both.Backend("cpu").Backend);
        Assert.Equal(AllReduceBackend.TcpRing, both.Backend(null).Backend);

        var mixed = both.Register("2", W("b", cuda: false), "b");
        var choice = mixed.Backend("cuda:0");
        Assert.Equal(AllReduceBackend.TcpRing, choice.Backend);
        Assert.Contains("rank(s) 1 of 2", choice.Reason);
        // a member that is not registered any more cannot join either
        Assert.Equal(AllReduceBackend.TcpRing, both.Without("2")!.Backend("cuda").Backend);
    }

    [Fact]
    public void Effects_reach_the_worker_they_name_or_the_first_one()
    {
        var r = WorkerRoster<string>.Empty.Register("1", W("a"), "ref-a").Register("2", W("b"), "ref-b").Formed(1);
        Assert.Equal("ref-b", r.WorkerFor("b"));
        Assert.Equal("ref-a", r.WorkerFor(null));
        Assert.Null(r.WorkerFor("gone"));
        Assert.Equal(new[] { "2" }, r.Named(new[] { "b", "gone" }).Select(w => w.Key));
    }

    [Fact]
    public void The_roster_view_gives_each_worker_its_rank_in_the_current_group()
    {
        var r = WorkerRoster<string>.Empty.Register("1", W("a"), "a").Formed(1).Register("2", W("b"), "b");
        var entries = r.Entries();
        Assert.Equal(new[] { ("a", "1", 0), ("b", "2", -1) }, entries.Select(e => (e.WorkerId, e.Path, e.Rank)));
    }
}
