using HiggsCluster.Coordinator.Run;
using HiggsCluster.Messages;
using HiggsCluster.Planning;
using Xunit;

namespace HiggsCluster.Tests.Cluster;

/// <summary>The plan of a mixed dataset (data.manifests): corpora drawn by weight, deterministic, the same on the coordinator.</summary>
[Trait("Category", "Cluster")]
public class MixedPlanTests
{
    private static long[] Corpus(int c, int n) => Enumerable.Range(0, n).Select(i => DataMix.IdOf(c, i)).ToArray();

    // 300 + 50 + 1000 ids: the small corpus must cycle, the large one is seen a part per epoch
    private static readonly long[] Ids = Corpus(0, 300).Concat(Corpus(1, 50)).Concat(Corpus(2, 1000)).ToArray();
    private static readonly double[] Weights = { 0.5, 0.3, 0.2 };

    private static SamplePlan Plan(ulong seed = 5, double epochs = 10) => new(Ids, seed, 4, 2, 3, epochs, corpusWeights: Weights);

    private static List<long> Draws(SamplePlan p, int count)
    {
        var all = new List<long>();
        for (long s = 0; all.Count < count; s++) all.AddRange(p.StepSamples(s));
        return all.Take(count).ToList();
    }

    [Fact]
    public void Corpora_are_drawn_in_proportion_to_their_weights_within_two_percent_over_10000_draws()
    {
        var draws = Draws(Plan(), 10_000);
        for (int c = 0; c < Weights.Length; c++)
        {
            double share = draws.Count(id => DataMix.CorpusOf(id) == c) / 10_000.0;
            Assert.InRange(share, Weights[c] - 0.02, Weights[c] + 0.02);
        }
        // an epoch is as long as an unweighted one, so its steps are too
        Assert.Equal(new SamplePlan(Ids, 5, 4, 2, 3, 10).StepsPerEpoch, Plan().StepsPerEpoch);
        Assert.Equal(new[] { 675, 405, 270 }, Plan().CorpusDraws);
    }

    [Fact]
    public void The_same_seed_gives_the_same_plan_and_another_seed_another()
    {
        Assert.Equal(Draws(Plan(5), 3000), Draws(Plan(5), 3000));
        Assert.Equal(Draws(Plan(5), 3000), Draws(new SamplePlan(Ids.Reverse(), 5, 4, 2, 3, 10, corpusWeights: Weights), 3000)); // order of the ids given does not matter
        Assert.NotEqual(Draws(Plan(5), 3000), Draws(Plan(6), 3000));
    }

    [Fact]
    public void A_small_corpus_cycles_evenly_and_a_large_one_goes_on_where_the_last_epoch_stopped()
    {
        var p = Plan();
        var epoch0 = Enumerable.Range(0, p.StepsPerEpoch).SelectMany(s => p.StepSamples(s)).ToList();
        Assert.Equal(Ids.Length, epoch0.Count);
        var small = epoch0.Where(id => DataMix.CorpusOf(id) == 1).GroupBy(id => id).Select(g => g.Count()).ToList();
        Assert.Equal(50, small.Count);                      // 405 draws of 50 ids: every id 8 or 9 times
        Assert.InRange(small.Min(), 8, 8); Assert.InRange(small.Max(), 9, 9);
        // 270 draws per epoch of 1000 ids: no repeat in the first three epochs, all of them seen by the end of the fourth
        var large = Enumerable.Range(0, 4 * p.StepsPerEpoch).SelectMany(s => p.StepSamples(s)).Where(id => DataMix.CorpusOf(id) == 2).ToList();
        Assert.Equal(810, large.Take(810).Distinct().Count());
        Assert.Equal(1000, large.Distinct().Count());
    }

    [Fact]
    public void Quotas_round_by_largest_remainder_to_exactly_the_epoch()
    {
        Assert.Equal(new[] { 4, 3, 3 }, WeightedEpochs.Quotas(new[] { 1.0, 1.0, 1.0 }, 10));
        Assert.Equal(new[] { 7, 3 }, WeightedEpochs.Quotas(new[] { 0.7, 0.3 }, 10));
        Assert.Equal(new[] { 1, 0 }, WeightedEpochs.Quotas(new[] { 0.5, 0.5 }, 1));
    }

    [Fact]
    public void Ids_name_their_corpus_and_keep_separate_validation_ids_apart()
    {
        Assert.Equal(2, DataMix.CorpusOf(DataMix.IdOf(2, 123)));
        Assert.False(DataMix.IsSeparateValidationId(DataMix.IdOf(3, 999_999_999)));
        Assert.True(DataMix.IsSeparateValidationId(DataSplit.ValidationIdBase + 5));
        Assert.Equal(0, DataMix.CorpusOf(DataSplit.ValidationIdBase + 5));
    }

    [Fact]
    public void A_plan_refuses_a_corpus_without_weight_or_a_weighted_corpus_without_samples()
    {
        Assert.Contains("corpus 2", Assert.Throws<ArgumentException>(() => new SamplePlan(Ids, 5, 1, 1, 1, 1, corpusWeights: new[] { 1.0, 1.0 })).Message);
        Assert.Contains("corpus 1", Assert.Throws<ArgumentException>(() => new SamplePlan(Corpus(0, 5), 5, 1, 1, 1, 1, corpusWeights: new[] { 1.0, 1.0 })).Message);
        Assert.Throws<ArgumentException>(() => new SamplePlan(Corpus(0, 5), 5, 1, 1, 1, 1, corpusWeights: new[] { 0.0 }));
    }

    [Fact]
    public void Corpora_round_trip_through_their_config_text()
    {
        var corpora = new[] { new Corpus("/d/a;b|c=.jsonl", 0.7, "/d"), new Corpus("/e/\"x\".jsonl", 3) };
        Assert.Equal(corpora, DataMix.Parse(DataMix.Format(corpora)));
        Assert.Equal(new[] { 2.5, 1.0 }, DataMix.Parse("[{\"path\":\"a\",\"weight\":\"2.5\"},{\"path\":\"b\"}]").Select(c => c.Weight));
        Assert.StartsWith("[1].weight", Assert.Throws<FormatException>(() => DataMix.Parse("[{\"path\":\"a\"},{\"path\":\"b\",\"weight\":\"lots\"}]")).Message);
        Assert.StartsWith("[0].size", Assert.Throws<FormatException>(() => DataMix.Parse("[{\"path\":\"a\",\"size\":1}]")).Message);
        Assert.Null(DataMix.Weights(""));
    }

    [Fact]
    public void The_coordinator_plans_a_mixed_dataset_with_the_weights_of_its_config()
    {
        var corpora = new[] { new Corpus("/a.jsonl", 3), new Corpus("/b.jsonl", 1) };
        var toy = ToyCluster.Spec("mix", ranks: 2, micro: 2, accum: 1, shards: 4, seed: 9);
        var spec = toy with { Options = toy.Options with { Manifests = corpora } };
        var ids = Corpus(0, 12).Concat(Corpus(1, 4)).ToArray();
        var (s, _) = Prepare(spec, ids, ids);
        Assert.NotNull(s.Plan);
        var reference = new SamplePlan(ids, 9, 2, 1, 2, 1, corpusWeights: new[] { 3.0, 1.0 });
        Assert.Equal(reference.CorpusDraws, s.Plan!.CorpusDraws);
        for (long step = 0; step < reference.TotalSteps; step++) Assert.Equal(reference.StepSamples(step), s.Plan.StepSamples(step));

        // every entry of the second corpus unusable: its weight cannot be drawn, the run fails naming it
        var (bad, fx) = Prepare(spec with { RunId = "mix" }, ids, Corpus(0, 12));
        Assert.Equal(RunPhase.Failed, bad.Phase);
        Assert.Contains("data.manifests[1]", fx.OfType<RunEndedEffect>().Single().Reason);
    }

    private static (RunState, List<RunEffect>) Prepare(RunSpec spec, long[] parsed, long[] usable)
    {
        var fx = new List<RunEffect>();
        var (s, e) = RunMachine.Handle(RunState.Submit(spec), new MembershipChanged(new[] { "L1" }, 1, 1));
        fx.AddRange(e);
        for (int shard = 0; shard < spec.ShardCount; shard++)
        {
            var mine = parsed.Where(id => id % spec.ShardCount == shard).ToArray();
            (s, e) = RunMachine.Handle(s, new ShardsReported(new[] { shard }, mine, mine.Intersect(usable).ToArray(), mine.Except(usable).Select(i => $"entry {i} bad").ToArray()));
            fx.AddRange(e);
        }
        return (s, fx);
    }
}
