using HiggsCluster.Training.Generation;
using Xunit;
using static HiggsCluster.Tests.Generation.SamplerFixtures;

namespace HiggsCluster.Tests.Generation;

/// <summary>Token choice: HF's warpers as upstream applies them, repetition-aware sampling, and seeding.</summary>
[Trait("Category", "Generate")]
public sealed class SamplingTests
{
    [Fact]
    public void Top_k_keeps_only_the_k_best()
    {
        var l = new float[Vocab];
        for (int i = 0; i < Vocab; i++) l[i] = i * 0.1f; // 15 and 14 are the two best; the rest still carry mass
        var seen = new HashSet<long>();
        var s = new HiggsSampler(Tokens(), new SamplingOptions { Temperature = 1, TopK = 2, TopP = 1, Seed = 7, MaxNewTokens = 1000 });
        for (int i = 0; i < 400; i++) seen.Add(((SamplerStep.Text)s.Next(l, default)).TokenId);
        Assert.Equal(new HashSet<long> { 14, 15 }, seen);

        var scores = new double[] { 1, 3, 3, 2 };
        LogitWarpers.TopK(scores, 2); // ties with the k-th best are kept, as HF's warper keeps them
        Assert.Equal(new[] { double.NegativeInfinity, 3, 3, double.NegativeInfinity }, scores);
    }

    [Theory]
    [InlineData(0.75, new long[] { 0, 1 })]     // ascending mass 0.05, 0.20 ≤ 0.25 dropped
    [InlineData(0.85, new long[] { 0, 1, 2 })]  // only 0.05 ≤ 0.15 dropped
    [InlineData(0.01, new long[] { 0 })]        // the best token always survives
    public void Top_p_keeps_the_nucleus(double p, long[] kept)
    {
        var probs = new[] { 0.5, 0.3, 0.15, 0.05 };
        var l = probs.Select(q => (float)Math.Log(q)).ToArray();
        var s = new HiggsSampler(Tokens(), new SamplingOptions { Temperature = 1, TopP = p, Seed = 3, MaxNewTokens = 1000 });
        var seen = new HashSet<long>();
        for (int i = 0; i < 400; i++) seen.Add(((SamplerStep.Text)s.Next(l, default)).TokenId);
        Assert.Equal(kept.ToHashSet(), seen);
    }

    [Fact]
    public void Temperature_zero_is_greedy_and_a_tiny_temperature_behaves_like_it()
    {
        var l = new float[Vocab];
        for (int i = 0; i < Vocab; i++) l[i] = 1f;
        l[6] = 2f;
        for (ulong seed = 0; seed < 50; seed++)
        {
            var zero = new HiggsSampler(Tokens(), new SamplingOptions { Temperature = 0, TopP = 1, Seed = seed });
            var tiny = new HiggsSampler(Tokens(), new SamplingOptions { Temperature = 1e-3, TopP = 1, Seed = seed });
            Assert.Equal(new SamplerStep.Text(6), zero.Next(l, default));
            Assert.Equal(new SamplerStep.Text(6), tiny.Next(l, default));
        }
        // while temperature 1 over the same logits does pick other tokens
        var warm = new HiggsSampler(Tokens(), new SamplingOptions { Temperature = 1, TopP = 1, Seed = 1, MaxNewTokens = 100 });
        Assert.Contains(Enumerable.Range(0, 50), _ => ((SamplerStep.Text)warm.Next(l, default)).TokenId != 6);
    }

    [Fact]
    public void RAS_resamples_a_code_seen_max_repeat_times_in_the_window_even_when_greedy()
    {
        var plain = IntoAudio(4, GreedyNoRas);
        var ras = IntoAudio(4, new SamplingOptions { Greedy = true, Seed = 11 }); // RasWindow 7, RasMaxRepeat 2
        var l = BarelyFive(4);
        var noRas = Enumerable.Range(0, 3).Select(_ => Col(plain.Next(default, l))[0]).ToArray();
        var withRas = Enumerable.Range(0, 3).Select(_ => Col(ras.Next(default, l))[0]).ToArray();
        Assert.Equal(new long[] { 5, 5, 5 }, noRas);
        // the window holds 0, then 1 earlier 5: kept; with 2 earlier 5s the third is redrawn from the full softmax
        Assert.Equal(5, withRas[0]);
        Assert.Equal(5, withRas[1]);
        Assert.NotEqual(5, withRas[2]);
    }

    [Fact]
    public void RAS_window_and_max_repeat_bound_what_counts_as_repetition()
    {
        // window 1: only the previous column counts; max repeat 1: one earlier 5 is already too many
        var s = IntoAudio(1, new SamplingOptions { Greedy = true, RasWindow = 1, RasMaxRepeat = 1, Seed = 2 });
        var l = BarelyFive(1);
        Assert.Equal(5, Col(s.Next(default, l))[0]);    // previous column is the BOS column
        Assert.NotEqual(5, Col(s.Next(default, l))[0]); // previous column was 5
        // max repeat 3 with a wide window: the fourth 5 in a row is the first one redrawn
        var wide = IntoAudio(1, new SamplingOptions { Greedy = true, RasWindow = 7, RasMaxRepeat = 3, Seed = 2 });
        var codes = Enumerable.Range(0, 4).Select(_ => Col(wide.Next(default, l))[0]).ToArray();
        Assert.Equal(new long[] { 5, 5, 5 }, codes[..3]);
        Assert.NotEqual(5, codes[3]);
    }

    [Fact]
    public void RAS_redraws_from_the_raw_distribution_not_the_top_k_one()
    {
        // top-k 1 alone can only ever give 5; RAS ignores the warpers, so other codes appear once 5 repeats
        var l = BarelyFive(1);
        var topOnly = IntoAudio(1, new SamplingOptions { Temperature = 1, TopK = 1, TopP = 1, RasWindow = 0, Seed = 4 });
        Assert.All(Enumerable.Range(0, 20), _ => Assert.Equal(5, Col(topOnly.Next(default, l))[0]));
        var withRas = IntoAudio(1, new SamplingOptions { Temperature = 1, TopK = 1, TopP = 1, Seed = 4 });
        Assert.Contains(Enumerable.Range(0, 20), _ => Col(withRas.Next(default, l))[0] != 5);
    }

    private static List<long> Run(ulong seed)
    {
        var o = new SamplingOptions { Temperature = 1, TopP = 1, Seed = seed, MaxNewTokens = 40 };
        var s = new HiggsSampler(Tokens(), o, lastPromptToken: AudioOutBos, promptAudioOut: null);
        var flat = new float[4 * C];
        var got = new List<long>();
        while (!s.Finished)
        {
            var step = s.Next(default, flat);
            if (step is SamplerStep.Audio a) got.AddRange(a.Column);
            if (step is SamplerStep.Text t) got.Add(t.TokenId);
            if (!s.InAudio && !s.NextIsForced && !s.Finished) break;
        }
        return got;
    }

    [Fact]
    public void Same_seed_gives_the_same_sequence_and_another_seed_another()
    {
        var a = Run(123);
        Assert.True(a.Count > 40);
        Assert.Equal(a, Run(123));
        Assert.NotEqual(a, Run(124));
    }

}
