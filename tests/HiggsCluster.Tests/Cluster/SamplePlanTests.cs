using HiggsCluster.Planning;
using HiggsCluster.Coordinator.Planning;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class SamplePlanTests
{
    [Fact]
    public void Epoch_order_is_a_seeded_permutation_that_changes_per_epoch_and_seed()
    {
        var p = SamplePlan.Create(1000, 64, 8, seed: 42);
        var e0 = p.EpochOrder(0);
        Assert.Equal(Enumerable.Range(0, 1000).Select(i => (long)i), e0.Order());
        Assert.Equal(e0, SamplePlan.Create(1000, 64, 8, 42).EpochOrder(0));
        Assert.NotEqual(e0, p.EpochOrder(1));
        Assert.NotEqual(e0, SamplePlan.Create(1000, 64, 8, 43).EpochOrder(0));
    }

    [Theory]
    [InlineData(103, 10, 3, 1)]
    [InlineData(103, 10, 3, 4)]
    [InlineData(7, 16, 2, 3)]   // one short step, ranks with nothing
    [InlineData(64, 16, 4, 4)]
    public void Every_sample_is_planned_exactly_once_per_epoch_whatever_the_world(int n, int perStep, int micro, int world)
    {
        var p = SamplePlan.Create(n, perStep, micro, 7);
        var order = p.EpochOrder(0);
        var seen = new List<long>();
        for (long s = 0; s < p.StepsPerEpoch; s++)
        {
            var step = p.StepSamples(order, s);
            var split = p.SplitAcrossRanks(step, world);
            Assert.Equal(world, split.Length);
            Assert.All(split.SelectMany(r => r), m => Assert.InRange(m.Length, 1, micro));
            var flat = split.SelectMany(r => r.SelectMany(m => m)).ToArray();
            Assert.Equal(step, flat); // the split keeps the step's order and drops nothing
            var sizes = split.Select(r => r.Sum(m => m.Length)).ToArray();
            Assert.True(sizes.Max() - sizes.Min() <= 1, "ranks differ by more than one sample");
            seen.AddRange(flat);
        }
        Assert.Equal(Enumerable.Range(0, n).Select(i => (long)i), seen.Order());
    }

    [Fact]
    public void Step_contents_do_not_depend_on_the_number_of_workers()
    {
        var p = SamplePlan.Create(50, 12, 2, 1);
        var order = p.EpochOrder(3);
        var step = p.StepSamples(order, 2);
        foreach (var w in new[] { 1, 2, 3, 5 })
            Assert.Equal(step, p.SplitAcrossRanks(step, w).SelectMany(r => r.SelectMany(m => m)).ToArray());
    }

    [Fact]
    public void Cursor_commits_each_step_once_in_order_and_rolls_over_epochs()
    {
        var p = SamplePlan.Create(25, 10, 5, 3); // 3 steps per epoch
        var c = SampleCursor.Start;
        var consumed = new Dictionary<int, List<long>> { [0] = new(), [1] = new() };
        int world = 1;
        while (!c.Finished(p, 2, 0))
        {
            var ids = p.StepSamples(p.EpochOrder(c.Epoch), c.Step);
            var before = c;
            c = c.Commit(p, c.Epoch, c.Step, generation: world, world: world, ids);
            consumed[before.Epoch].AddRange(ids);
            Assert.Contains("already committed", Assert.Throws<InvalidOperationException>(() => c.Commit(p, before.Epoch, before.Step, 1, 1, ids)).Message);
            world = world % 3 + 1; // membership changes between steps do not disturb the plan
        }
        Assert.Equal(6, c.GlobalStep);
        Assert.Equal(2, c.Epoch);
        foreach (var e in consumed.Values) Assert.Equal(Enumerable.Range(0, 25).Select(i => (long)i), e.Order());
        Assert.Contains("out of order", Assert.Throws<InvalidOperationException>(() => SampleCursor.Start.Commit(p, 0, 1, 0, 1, Array.Empty<long>())).Message);
        Assert.True(SampleCursor.Start.Commit(p, 0, 0, 0, 1, Array.Empty<long>()).Finished(p, 5, maxSteps: 1));
    }
}
