using HiggsCluster.DataLoaderNode.Serving;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

[Trait("Category", "Cluster")]
public class ServingWindowTests
{
    private static (ServingWindow, IReadOnlyList<WindowEffect>) Apply(ServingWindow w, params WindowCommand[] cmds)
    {
        var all = new List<WindowEffect>();
        foreach (var c in cmds) { var (w2, fx) = w.Handle(c); w = w2; all.AddRange(fx); }
        return (w, all);
    }

    private static BatchKey K(int i) => new(i / 2, i % 2);

    [Fact]
    public void Builds_at_most_capacity_ahead_and_sends_only_against_credit_in_plan_order()
    {
        var w = ServingWindow.Create(3);
        var (w1, fx) = Apply(w, Enumerable.Range(0, 8).Select(i => (WindowCommand)new PlanBatch(K(i), 0)).ToArray());
        Assert.Equal(new[] { K(0), K(1), K(2) }, fx.OfType<BuildBatch>().Select(b => b.Key));
        (w1, fx) = Apply(w1, new BatchBuilt(K(1)), new BatchBuilt(K(2)));
        Assert.Empty(fx); // no credit, and K(0) not built: nothing goes out of order
        (w1, fx) = Apply(w1, new Demand(2, 0));
        Assert.Empty(fx.OfType<SendBatch>());
        (w1, fx) = Apply(w1, new BatchBuilt(K(0)));
        Assert.Equal(new[] { K(0), K(1) }, fx.OfType<SendBatch>().Select(b => b.Key));
        Assert.Equal(3, w1.Held);
        (w1, fx) = Apply(w1, new Acknowledge(K(0), 0));
        Assert.Equal(new WindowEffect[] { new ReleaseBatch(K(0)), new BuildBatch(K(3)) }, fx);
        Assert.True(w1.Held <= 3);
    }

    [Fact]
    public void Every_planned_batch_is_sent_once_and_released_once_under_random_interleavings()
    {
        var rnd = new Random(3);
        for (int trial = 0; trial < 20; trial++)
        {
            int cap = rnd.Next(2, 5), n = 25;
            var (w, fx) = Apply(ServingWindow.Create(cap), Enumerable.Range(0, n).Select(i => (WindowCommand)new PlanBatch(K(i), 0)).ToArray());
            var building = new List<BatchKey>(fx.OfType<BuildBatch>().Select(b => b.Key));
            var inFlight = new List<BatchKey>();
            var sent = new List<BatchKey>();
            var released = new List<BatchKey>();
            int guard = 0;
            while (released.Count < n && guard++ < 10_000)
            {
                WindowCommand c = rnd.Next(3) switch
                {
                    0 when building.Count > 0 => new BatchBuilt(building[rnd.Next(building.Count)]),
                    1 when inFlight.Count > 0 => new Acknowledge(inFlight[0], 0),
                    _ => new Demand(rnd.Next(1, 3), 0),
                };
                if (c is BatchBuilt bb) building.Remove(bb.Key);
                if (c is Acknowledge a) inFlight.Remove(a.Key);
                (w, fx) = w.Handle(c);
                Assert.Empty(fx.OfType<ProtocolError>());
                Assert.True(w.Held <= cap, $"window holds {w.Held} > {cap}");
                building.AddRange(fx.OfType<BuildBatch>().Select(b => b.Key));
                inFlight.AddRange(fx.OfType<SendBatch>().Select(b => b.Key));
                sent.AddRange(fx.OfType<SendBatch>().Select(b => b.Key));
                released.AddRange(fx.OfType<ReleaseBatch>().Select(b => b.Key));
            }
            Assert.Equal(Enumerable.Range(0, n).Select(K), sent);
            Assert.Equal(Enumerable.Range(0, n).Select(K), released);
        }
    }

    [Fact]
    public void Protocol_errors_and_failures_are_reported_not_dropped()
    {
        var (w, fx) = Apply(ServingWindow.Create(2), new PlanBatch(K(0), 0), new PlanBatch(K(0), 0));
        Assert.Single(fx.OfType<ProtocolError>());
        (w, fx) = Apply(w, new Acknowledge(K(0), 0));
        Assert.Single(fx.OfType<ProtocolError>());
        (w, fx) = Apply(w, new BatchBuildFailed(K(0), "sample 17: missing audio"));
        Assert.Equal("sample 17: missing audio", fx.OfType<ReportBatchFailed>().Single().Reason);
        Assert.Single(Apply(w, new Demand(0, 0)).Item2.OfType<ProtocolError>());
        Assert.Throws<ArgumentOutOfRangeException>(() => ServingWindow.Create(0));
    }

    [Fact]
    public void Reset_releases_everything_held()
    {
        var (w, _) = Apply(ServingWindow.Create(2), new PlanBatch(K(0), 0), new PlanBatch(K(1), 0), new PlanBatch(K(2), 0), new BatchBuilt(K(0)), new Demand(2, 0));
        var (w2, fx) = w.Handle(new ResetWindow(1));
        Assert.Equal(new[] { K(0), K(1) }, fx.OfType<ReleaseBatch>().Select(r => r.Key));
        Assert.Empty(w2.Entries);
        Assert.Equal(1, w2.PlanGeneration);
        // a reset to a generation already planned drops nothing
        var (w3, more) = Apply(w2, new PlanBatch(K(0), 1), new ResetWindow(1));
        Assert.Empty(more.OfType<ReleaseBatch>());
        Assert.Single(w3.Entries);
    }

    /// <summary>
    /// The rank's worker died and the rank went to another worker in the next group: the new group's batches must wait
    /// for the new worker's credits (the old worker's left-over credits would send them to a dead actor, and the
    /// unacknowledged batches would never be sent again: the run stalled).
    /// </summary>
    [Fact]
    public void A_new_group_is_served_only_against_its_own_consumer_credits()
    {
        var (w, fx) = Apply(ServingWindow.Create(4), new Demand(4, 1), new PlanBatch(K(0), 1), new BatchBuilt(K(0)));
        Assert.Equal(new[] { K(0) }, fx.OfType<SendBatch>().Select(b => b.Key)); // 3 credits of generation 1 left
        (w, fx) = Apply(w, new PlanBatch(K(0), 2), new PlanBatch(K(1), 2), new BatchBuilt(K(0)), new BatchBuilt(K(1)));
        Assert.Equal(new[] { K(0) }, fx.OfType<ReleaseBatch>().Select(b => b.Key)); // generation 1's in-flight batch
        Assert.Empty(fx.OfType<SendBatch>());
        (w, fx) = Apply(w, new Demand(2, 1)); // a late demand of the dead consumer
        Assert.Empty(fx.OfType<SendBatch>());
        (w, fx) = Apply(w, new Demand(1, 2));
        Assert.Equal(new[] { K(0) }, fx.OfType<SendBatch>().Select(b => b.Key)); // the new consumer's one credit, not the old three
        (_, fx) = Apply(w, new Demand(1, 2));
        Assert.Equal(new[] { K(1) }, fx.OfType<SendBatch>().Select(b => b.Key));
    }

    [Fact]
    public void A_new_consumers_demand_that_overtakes_the_new_plan_waits_for_it()
    {
        var (w, fx) = Apply(ServingWindow.Create(2), new PlanBatch(K(0), 1), new PlanBatch(K(1), 1), new BatchBuilt(K(0)), new BatchBuilt(K(1)), new Demand(2, 2));
        Assert.Empty(fx.OfType<SendBatch>()); // generation 1's batches would be refused by generation 2's worker
        (w, fx) = Apply(w, new PlanBatch(K(2), 2), new BatchBuilt(K(2)));
        Assert.Equal(new[] { K(2) }, fx.OfType<SendBatch>().Select(b => b.Key));
        Assert.Equal(1, w.Credits);
    }

    [Fact]
    public void An_ack_from_an_older_group_releases_nothing_of_the_new_one()
    {
        var (w, fx) = Apply(ServingWindow.Create(2), new Demand(2, 2), new PlanBatch(K(0), 2), new BatchBuilt(K(0)));
        Assert.Single(fx.OfType<SendBatch>());
        (w, fx) = Apply(w, new Acknowledge(K(0), 1));
        Assert.Empty(fx);
        Assert.Equal(BatchStatus.InFlight, w.Entries.Single().Status);
        (_, fx) = Apply(w, new Acknowledge(K(0), 2));
        Assert.Equal(new WindowEffect[] { new ReleaseBatch(K(0)) }, fx);
    }
}
