using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

[Trait("Category", "AudioTokenizer")]
public sealed class AudioTokenizerEncodeTests
{
    /// <summary>The closed form of goldens/audio_tokenizer/frame_count, written out independently of FramePlan.</summary>
    private static long ClosedFormFrames(long n)
    {
        long m = (2 * n + 2) / 3;                      // ceil(2N/3)
        long h = (long)Math.Floor((m - 80) / 320.0) + 1;
        return (h + 1) / 2;
    }

    [Fact]
    public void Frame_plan_matches_the_closed_form_from_632_to_30_seconds()
    {
        var s = TokenizerSizes.Real;
        for (long n = 632; n <= 720_000; n += n < 5000 ? 1 : 97)
        {
            var p = FramePlan.For(s, n);
            Assert.Null(p.Error);
            Assert.Equal(ClosedFormFrames(n), p.Frames);
            long d = (n + 959) / 960 - p.Frames;
            Assert.InRange(d, 0, 1);
        }
        Assert.NotNull(FramePlan.For(s, 631).Error);
        Assert.NotNull(FramePlan.For(s, 118).Error);
        Assert.Equal(-1, FramePlan.For(s, 118).SemanticFrames);
        Assert.NotEqual(-1, FramePlan.For(s, 119).SemanticFrames);
    }

    [Fact]
    public void Fallback_case_from_the_spec_re_pads_and_keeps_the_semantic_count()
    {
        var p = FramePlan.For(TokenizerSizes.Real, 48_480);
        Assert.Equal(50, p.AcousticFramesFirstPass);
        Assert.Equal(51, p.SemanticFrames);
        Assert.True(p.Repadded);
        Assert.Equal(51, p.Frames);
    }

    [Theory]
    [InlineData(632)]
    [InlineData(959)]
    [InlineData(961)]
    [InlineData(7205)]
    [InlineData(14_400)]
    [InlineData(24_000)]
    [InlineData(48_480)]
    public void Encoder_output_length_follows_the_closed_form(int n)
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        using var r = m.EncodeBatch(tensor(TinyTokenizerFixture.Wave(n)).unsqueeze(0));
        Assert.Equal(new long[] { 1, 8, ClosedFormFrames(n) }, r.Codes.shape);
        Assert.Equal(ScalarType.Int64, r.Codes.dtype);
        Assert.Equal(new long[] { 1, m.Sizes.QuantizerDim, ClosedFormFrames(n) }, r.PrequantLatent.shape);
        Assert.Equal(new long[] { 1, (2L * n + 2) / 3 }, r.Resampled16k!.shape);
        Assert.InRange(r.Codes.min().item<long>(), 0, m.Sizes.Bins - 1);
        Assert.InRange(r.Codes.max().item<long>(), 0, m.Sizes.Bins - 1);
        Assert.True(r.CodeMargin.ge(0).all().item<bool>());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(400)]
    [InlineData(631)]
    public void Clips_shorter_than_632_samples_are_refused(int n)
    {
        using var scope = torch.NewDisposeScope();
        var e = Assert.Throws<ArgumentException>(() => TinyTokenizerFixture.Model.Encode(TinyTokenizerFixture.Wave(n)));
        Assert.StartsWith("cannot encode", e.Message);
        Assert.Contains($"{n}", e.Message);
    }

    [Fact]
    public void Encoding_is_deterministic_and_depends_on_the_signal()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        var a = m.Encode(TinyTokenizerFixture.Wave(9000, seed: 3));
        var b = m.Encode(TinyTokenizerFixture.Wave(9000, seed: 3));
        var c = m.Encode(TinyTokenizerFixture.Wave(9000, seed: 4));
        Assert.Equal(TinyTokenizerFixture.Longs(a), TinyTokenizerFixture.Longs(b));
        Assert.NotEqual(TinyTokenizerFixture.Longs(a), TinyTokenizerFixture.Longs(c));
    }

    [Fact]
    public void Grouped_encoding_equals_clip_by_clip_encoding()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        // 7205 re-pads, 4800 does not; two clips share each length
        var clips = new[] { TinyTokenizerFixture.Wave(7205, 1), TinyTokenizerFixture.Wave(4800, 2), TinyTokenizerFixture.Wave(7205, 3), TinyTokenizerFixture.Wave(4800, 4) };
        Assert.True(m.PlanFor(7205).Repadded);
        Assert.False(m.PlanFor(4800).Repadded);
        var grouped = m.EncodeMany(clips, maxGroup: 8);
        for (int i = 0; i < clips.Length; i++)
            Assert.Equal(TinyTokenizerFixture.Longs(m.Encode(clips[i])), TinyTokenizerFixture.Longs(grouped[i]));
    }

    [Fact]
    public void Stage_wise_entry_with_the_internal_resampling_gives_the_same_codes()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        var x = tensor(TinyTokenizerFixture.Wave(5000)).unsqueeze(0);
        using var full = m.EncodeBatch(x);
        using var staged = m.EncodeBatch(x, resampled16k: m.Resample24kTo16k(x));
        Assert.Equal(TinyTokenizerFixture.Longs(full.Codes), TinyTokenizerFixture.Longs(staged.Codes));
        Assert.Throws<ArgumentException>(() => m.EncodeBatch(x, resampled16k: zeros(1, 10)));
    }

    [Fact]
    public void Semantic_features_are_every_second_frame_of_the_mean_hidden_state()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        using var r = m.EncodeBatch(tensor(TinyTokenizerFixture.Wave(6000)).unsqueeze(0));
        var hidden = r.HubertHiddenStates!;                     // (L+1, 1, H, S)
        Assert.Equal(m.Sizes.Hubert.Layers + 1, hidden.shape[0]);
        var plan = m.PlanFor(6000);
        Assert.Equal(plan.HubertFrames, hidden.shape[2]);
        var mean = hidden.mean([0L])[0];
        var expected = mean.index_select(0, arange(0, mean.shape[0], 2, dtype: ScalarType.Int64));
        Assert.True(expected.allclose(r.SemanticFeatures![0], 1e-6, 1e-6));
    }
}
