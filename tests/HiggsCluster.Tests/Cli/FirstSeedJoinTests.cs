using HiggsCluster.Cli.Node;
using Xunit;
using static HiggsCluster.Cli.Node.FirstSeedJoin;

namespace HiggsCluster.Tests.Cli;

/// <summary>How the first seed joins: an existing cluster is joined, a cold start is formed, a silent seed holds it back for a while.</summary>
public sealed class FirstSeedJoinTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(SilentIncarnations)]
    public void A_seed_that_is_a_member_means_the_cluster_exists_and_is_joined_whatever_the_others_say(int incarnation)
    {
        Assert.Equal(Step.JoinOthers, Decide(new[] { Probe.Member, Probe.Silent }, incarnation));
        Assert.Equal(Step.JoinOthers, Decide(new[] { Probe.Closed, Probe.Member }, incarnation));
        Assert.Equal(Step.JoinOthers, Decide(new[] { Probe.NotMember, Probe.Member }, incarnation));
    }

    [Fact]
    public void Seeds_that_are_not_members_or_not_running_are_a_cold_start_where_Akka_forms_the_cluster()
    {
        Assert.Equal(Step.FormOrJoin, Decide(new[] { Probe.NotMember, Probe.Closed }, 0));
        Assert.Equal(Step.FormOrJoin, Decide(new[] { Probe.Closed, Probe.Closed }, 0));
        Assert.Equal(Step.FormOrJoin, Decide(new[] { Probe.NotMember }, 0));
    }

    [Fact]
    public void A_silent_seed_holds_the_first_seed_back_for_a_bounded_number_of_incarnations()
    {
        for (int i = 0; i < SilentIncarnations; i++)
            Assert.Equal(Step.AskAgain, Decide(new[] { Probe.NotMember, Probe.Silent }, i));
        Assert.Equal(Step.FormOrJoin, Decide(new[] { Probe.NotMember, Probe.Silent }, SilentIncarnations));
    }
}
