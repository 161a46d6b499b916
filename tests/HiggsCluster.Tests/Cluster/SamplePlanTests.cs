using HiggsCluster.Coordinator.Planning;
using HiggsCluster.Planning;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The one plan the coordinator and the single-process trainer share, as the cluster cuts it over workers.</summary>
[Trait("Category", "Cluster")]
public class SamplePlanTests
{
    private static List<long> Ids(int n) => Enumerable.Range(0, n).Select(i => (long)i * 7 + 3).ToList();

    [Theory]
    [InlineData(103, 1, 3, 2, 1)]
    [InlineData(103, 2, 2, 4, 3)]   // fewer workers than ranks: extra accumulation
    [InlineData(7, 2, 2, 4, 4)]     // one short step: ranks with nothing
    [InlineData(64, 4, 1, 2, 5)]    // more workers than ranks: idle workers
    public void Every_sample_is_planned_exactly_once_per_epoch_whatever_the_number_of_workers(int n, int micro, int accum, int ranks, int workers)
    {
        var p = new SamplePlan(Ids(n), 7, micro, accum, ranks, epochs: 2);
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var seen = new List<long>();
            for (long s = epoch * p.StepsPerEpoch; s < (epoch + 1) * p.StepsPerEpoch; s++)
            {
                var byWorker = Enumerable.Range(0, workers).Select(w => p.WorkerMicroBatches(s, w, workers)).ToList();
                Assert.All(byWorker.SelectMany(w => w), m => Assert.InRange(m.Length, 1, micro));
                var flat = byWorker.SelectMany(w => w.SelectMany(m => m)).ToList();
                Assert.Equal(p.StepSamples(s).Order(), flat.Order()); // the cut over workers drops and repeats nothing
                seen.AddRange(flat);
            }
            Assert.Equal(Ids(n), seen.Order());
        }
    }

    [Fact]
    public void A_step_is_the_same_samples_and_micro_batches_whoever_computes_them()
    {
        var p = new SamplePlan(Ids(50), 1, 2, 2, ranks: 4, epochs: 1);
        var byRank = Enumerable.Range(0, 4).SelectMany(r => p.MicroBatches(2, r)).Select(m => string.Join(',', m)).Order().ToList();
        foreach (var workers in new[] { 1, 2, 3, 4, 6 })
        {
            var cut = Enumerable.Range(0, workers).SelectMany(w => p.WorkerMicroBatches(2, w, workers)).Select(m => string.Join(',', m)).Order().ToList();
            Assert.Equal(byRank, cut);
        }
        Assert.Equal(new[] { 1, 3 }, p.RanksOfWorker(1, 2));
        Assert.Empty(p.RanksOfWorker(5, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => p.RanksOfWorker(2, 2));
    }

    [Fact]
    public void Cursor_commits_each_step_once_in_order_and_records_the_membership()
    {
        var p = new SamplePlan(Ids(25), 3, 5, 1, 2, epochs: 2); // 3 steps per epoch
        var c = SampleCursor.Start;
        int world = 1;
        while (!c.Finished(p))
        {
            var ids = p.StepSamples(c.GlobalStep);
            var before = c;
            c = c.Commit(p, c.GlobalStep, generation: world, world: world, ids);
            Assert.Contains("already committed", Assert.Throws<InvalidOperationException>(() => c.Commit(p, before.GlobalStep, 1, 1, ids)).Message);
            world = world % 3 + 1; // membership changes between steps do not disturb the plan
        }
        Assert.Equal(6, c.GlobalStep);
        Assert.Equal(new[] { 0, 0, 0, 1, 1, 1 }, c.Ledger.Select(r => r.Epoch));
        Assert.Equal(new[] { 1, 2, 3, 1, 2, 3 }, c.Ledger.Select(r => r.World));
        foreach (var e in new[] { 0, 1 }) Assert.Equal(Ids(25), c.Ledger.Where(r => r.Epoch == e).SelectMany(r => r.SampleIds).Order());
        Assert.Contains("out of order", Assert.Throws<InvalidOperationException>(() => SampleCursor.Start.Commit(p, 1, 0, 1, Array.Empty<long>())).Message);
    }
}
