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
        var (w1, fx) = Apply(w, Enumerable.Range(0, 8).Select(i => (WindowCommand)new PlanBatch(K(i))).ToArray());
        Assert.Equal(new[] { K(0), K(1), K(2) }, fx.OfType<BuildBatch>().Select(b => b.Key));
        (w1, fx) = Apply(w1, new BatchBuilt(K(1)), new BatchBuilt(K(2)));
        Assert.Empty(fx); // no credit, and K(0) not built: nothing goes out of order
        (w1, fx) = Apply(w1, new Demand(2));
        Assert.Empty(fx.OfType<SendBatch>());
        (w1, fx) = Apply(w1, new BatchBuilt(K(0)));
        Assert.Equal(new[] { K(0), K(1) }, fx.OfType<SendBatch>().Select(b => b.Key));
        Assert.Equal(3, w1.Held);
        (w1, fx) = Apply(w1, new Acknowledge(K(0)));
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
            var (w, fx) = Apply(ServingWindow.Create(cap), Enumerable.Range(0, n).Select(i => (WindowCommand)new PlanBatch(K(i))).ToArray());
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
                    1 when inFlight.Count > 0 => new Acknowledge(inFlight[0]),
                    _ => new Demand(rnd.Next(1, 3)),
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
        var (w, fx) = Apply(ServingWindow.Create(2), new PlanBatch(K(0)), new PlanBatch(K(0)));
        Assert.Single(fx.OfType<ProtocolError>());
        (w, fx) = Apply(w, new Acknowledge(K(0)));
        Assert.Single(fx.OfType<ProtocolError>());
        (w, fx) = Apply(w, new BatchBuildFailed(K(0), "sample 17: missing audio"));
        Assert.Equal("sample 17: missing audio", fx.OfType<ReportBatchFailed>().Single().Reason);
        Assert.Single(Apply(w, new Demand(0)).Item2.OfType<ProtocolError>());
        Assert.Throws<ArgumentOutOfRangeException>(() => ServingWindow.Create(0));
    }

    [Fact]
    public void Reset_releases_everything_held()
    {
        var (w, _) = Apply(ServingWindow.Create(2), new PlanBatch(K(0)), new PlanBatch(K(1)), new PlanBatch(K(2)), new BatchBuilt(K(0)), new Demand(2));
        var (w2, fx) = w.Handle(new ResetWindow());
        Assert.Equal(new[] { K(0), K(1) }, fx.OfType<ReleaseBatch>().Select(r => r.Key));
        Assert.Empty(w2.Entries);
        Assert.Equal(1, w2.Credits); // a demand that raced ahead of the new plan is not lost
    }
}
