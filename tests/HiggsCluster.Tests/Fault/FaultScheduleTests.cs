using HiggsCluster.Messages.Faults;
using Xunit;

namespace HiggsCluster.Tests.Fault;

[Trait("Category", "Fault")]
public sealed class FaultScheduleTests
{
    [Fact]
    public void A_worker_fault_defaults_to_before_the_all_reduce_and_fires_only_at_its_step()
    {
        var s = FaultSchedule.Parse("kill:worker@step=7");
        var f = Assert.Single(s.Faults);
        Assert.Equal(new FaultSpec("worker", FaultPoint.BeforeAllReduce, 7), f);
        var fired = new List<FaultSpec>();
        var inj = new FaultInjector(s, "worker", fired.Add);
        inj.At(FaultPoint.BeforeAllReduce, 6);
        inj.At(FaultPoint.AfterAllReduce, 7);
        Assert.Empty(fired);
        inj.At(FaultPoint.BeforeAllReduce, 7);
        Assert.Equal(new[] { f }, fired);
        // the same schedule on a loader does nothing
        var other = new List<FaultSpec>();
        new FaultInjector(s, "loader", other.Add).At(FaultPoint.BeforeAllReduce, 7);
        Assert.Empty(other);
    }

    [Fact]
    public void Several_faults_points_and_roles_parse_and_print_back()
    {
        var s = FaultSchedule.Parse(" kill:worker@step=3,point=after-allreduce ; kill:loader@step=0 ;kill:worker@point=checkpoint-write,step=4");
        Assert.Equal(new[]
        {
            new FaultSpec("worker", FaultPoint.AfterAllReduce, 3),
            new FaultSpec("loader", FaultPoint.ServeBatch, 0),
            new FaultSpec("worker", FaultPoint.CheckpointWrite, 4),
        }, s.Faults);
        Assert.Equal(s.Faults, FaultSchedule.Parse(string.Join(";", s.Faults)).Faults);
        Assert.True(FaultSchedule.Parse(null).IsEmpty);
        Assert.True(FaultSchedule.Parse("  ").IsEmpty);
    }

    [Theory]
    [InlineData("worker@step=1", "'action'")]
    [InlineData("stop:worker@step=1", "'action'")]
    [InlineData("kill:worker", "'step'")]
    [InlineData("kill:gpu@step=1", "'role'")]
    [InlineData("kill:worker@step=-1", "'step'")]
    [InlineData("kill:worker@step=x", "'step'")]
    [InlineData("kill:worker@step=1,step=2", "'step'")]
    [InlineData("kill:worker@point=after-allreduce", "'step'")]
    [InlineData("kill:worker@step=1,point=sideways", "'point'")]
    [InlineData("kill:worker@step=1,point=serve-batch", "'point'")]
    [InlineData("kill:loader@step=1,point=before-allreduce", "'point'")]
    [InlineData("kill:worker@step=1,when=now", "'when'")]
    [InlineData("kill:worker@step", "'step'")]
    public void Bad_specs_are_refused_naming_the_field(string spec, string field)
    {
        var e = Assert.Throws<ArgumentException>(() => FaultSchedule.Parse(spec));
        Assert.Contains(field, e.Message);
        Assert.Contains(spec.Split(';')[0].Trim(), e.Message);
    }

    [Fact]
    public void A_fault_for_a_role_the_node_does_not_have_is_refused()
    {
        var s = FaultSchedule.Parse("kill:loader@step=2");
        Assert.Same(s, s.ForRoles(new[] { "loader", "coordinator" }));
        var e = Assert.Throws<ArgumentException>(() => s.ForRoles(new[] { "worker" }));
        Assert.Contains("'role'", e.Message);
    }
}
