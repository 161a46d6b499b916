using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Generation;
using Xunit;
using static HiggsCluster.Tests.Generation.SamplerFixtures;

namespace HiggsCluster.Tests.Generation;

/// <summary>The mode transitions and delay-pattern rules of upstream's sampler (modeling_higgs_audio.py _sample*), and the revert.</summary>
[Trait("Category", "Generate")]
public sealed class SamplerTests
{
    [Fact]
    public void Greedy_text_takes_the_argmax()
    {
        var s = new HiggsSampler(Tokens(), GreedyNoRas);
        var l = new float[Vocab];
        l[3] = 1.5f; l[7] = 2f; l[9] = 1.9f;
        Assert.Equal(new SamplerStep.Text(7), s.Next(l, default));
        Assert.False(s.InAudio);
        Assert.False(s.NextIsForced);
    }

    [Fact]
    public void Audio_out_bos_is_followed_by_the_all_BOS_column_without_reading_logits()
    {
        var s = new HiggsSampler(Tokens(), GreedyNoRas);
        Assert.Equal(new SamplerStep.Text(AudioOutBos), s.Next(TextLogits(AudioOutBos), default));
        Assert.False(s.InAudio);
        Assert.True(s.NextIsForced);
        // Empty spans: the AUDIO_INIT step must not touch either of them.
        var init = Assert.IsType<SamplerStep.Audio>(s.Next(default, default));
        Assert.Equal(new long[] { Bos, Bos, Bos, Bos }, init.Column);
        Assert.False(init.EndsAudio);
        Assert.True(s.InAudio);
        Assert.Single(s.AudioColumns);
    }

    [Fact]
    public void Prompt_ending_in_audio_out_bos_starts_with_the_BOS_column()
    {
        var s = new HiggsSampler(Tokens(), GreedyNoRas, lastPromptToken: AudioOutBos, promptAudioOut: null);
        Assert.True(s.NextIsForced);
        Assert.Equal(new long[] { Bos, Bos, Bos, Bos }, Col(s.Next(default, default)));
        Assert.True(s.InAudio);
    }

    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    public void Ramp_in_forces_codebooks_above_the_delay_to_BOS(int k)
    {
        var s = IntoAudio(k, GreedyNoRas);
        var wanted = Enumerable.Range(0, k).Select(r => 100L + r).ToArray();
        var logits = AudioLogits(wanted);
        for (int step = 1; step <= k; step++)
        {
            var col = Col(s.Next(default, logits));
            for (int r = 0; r < k; r++)
                Assert.Equal(r < step ? wanted[r] : Bos, col[r]); // column j: codebooks ≥ j still BOS
        }
        // past the ramp every codebook is sampled
        Assert.Equal(wanted, Col(s.Next(default, logits)));
    }

    [Fact]
    public void First_EOS_codebook_forces_those_below_it_and_sets_the_countdown_as_upstream_code_does()
    {
        var s = IntoAudio(4, GreedyNoRas);
        for (int i = 0; i < 4; i++) s.Next(default, AudioLogits(100, 101, 102, 103)); // ramp done
        // Codebooks 1 and 3 emit EOS. Upstream's code takes the FIRST EOS codebook (1): codebook 0 is forced to EOS,
        // codebook 2 keeps its code, and K - 1 - 1 = 2 columns remain. (Taking the last one, 3, would have closed now.)
        var frontier = Assert.IsType<SamplerStep.Audio>(s.Next(default, AudioLogits(100, Eos, 102, Eos)));
        Assert.Equal(new long[] { Eos, Eos, 102, Eos }, frontier.Column);
        Assert.False(frontier.EndsAudio);
        Assert.True(s.InAudio);
        // remaining 2: codebooks below K - 2 = 2 forced, codebook 2 sampled
        var next = Assert.IsType<SamplerStep.Audio>(s.Next(default, AudioLogits(100, 101, 102, 103)));
        Assert.Equal(new long[] { Eos, Eos, 102, 103 }, next.Column);
        Assert.False(next.EndsAudio);
        // remaining 1: codebooks below 3 forced; the countdown reaches 0 and the segment closes
        var last = Assert.IsType<SamplerStep.Audio>(s.Next(default, AudioLogits(100, 101, 102, 103)));
        Assert.Equal(new long[] { Eos, Eos, Eos, 103 }, last.Column);
        Assert.True(last.EndsAudio);
    }

    [Fact]
    public void Countdown_after_codebook_0_ends_the_audio_and_forces_audio_eos()
    {
        var s = IntoAudio(4, GreedyNoRas);
        for (int i = 0; i < 4; i++) s.Next(default, AudioLogits(100, 101, 102, 103));
        Assert.Equal(new long[] { Eos, 101, 102, 103 }, Col(s.Next(default, AudioLogits(Eos, 101, 102, 103))));
        // the model keeps proposing codes; the countdown overrides one more codebook per column
        Assert.Equal(new long[] { Eos, 101, 102, 103 }, Col(s.Next(default, AudioLogits(100, 101, 102, 103))));
        Assert.Equal(new long[] { Eos, Eos, 102, 103 }, Col(s.Next(default, AudioLogits(100, 101, 102, 103))));
        Assert.True(s.InAudio);
        var closing = Assert.IsType<SamplerStep.Audio>(s.Next(default, AudioLogits(100, 101, 102, Eos)));
        Assert.Equal(new long[] { Eos, Eos, Eos, Eos }, closing.Column);
        Assert.True(closing.EndsAudio);
        Assert.False(s.InAudio);
        Assert.True(s.NextIsForced);
        // forced <|audio_eos|>, logits ignored; then plain text sampling again
        Assert.Equal(new SamplerStep.Text(AudioEos), s.Next(default, default));
        Assert.False(s.NextIsForced);
        Assert.Equal(new SamplerStep.Text(5), s.Next(TextLogits(5), default));
        Assert.Single(s.AudioSegments);
        Assert.Equal(1 + 4 + 4, s.AudioColumns.Count);
    }

    [Fact]
    public void Without_the_delay_pattern_EOS_does_not_close_the_audio()
    {
        // upstream's EOS countdown lives inside `if self.use_delay_pattern`; without it audio runs to the limit
        var s = IntoAudio(4, GreedyNoRas with { MaxNewTokens = 6 }, delay: false);
        var col = Assert.IsType<SamplerStep.Audio>(s.Next(default, AudioLogits(Eos, Eos, Eos, Eos)));
        Assert.Equal(new long[] { Eos, Eos, Eos, Eos }, col.Column);
        Assert.False(col.EndsAudio);
        Assert.True(s.InAudio);
    }

    [Theory]
    [InlineData(EndOfText)]
    [InlineData(EotId)]
    public void Stop_token_ends_generation(int stop)
    {
        var s = new HiggsSampler(Tokens(), GreedyNoRas);
        Assert.Equal(new SamplerStep.Text(4), s.Next(TextLogits(4), default));
        Assert.False(s.Finished);
        Assert.Equal(new SamplerStep.Text(stop), s.Next(TextLogits(stop), default));
        Assert.True(s.Finished);
        var done = Assert.IsType<SamplerStep.Done>(s.Next(TextLogits(4), default));
        Assert.Contains("stop", done.Reason);
    }

    [Fact]
    public void Step_limit_counts_text_tokens_and_audio_columns()
    {
        var s = new HiggsSampler(Tokens(), GreedyNoRas with { MaxNewTokens = 3 });
        s.Next(TextLogits(AudioOutBos), default);          // 1
        Col(s.Next(default, default));               // 2: the BOS column counts
        Assert.False(s.Finished);
        Col(s.Next(default, AudioLogits(1, 2, 3, 4)));     // 3
        Assert.True(s.Finished);
        Assert.Contains("max new tokens", Assert.IsType<SamplerStep.Done>(s.Next(default, AudioLogits(1, 2, 3, 4))).Reason);

        var text = new HiggsSampler(Tokens(), GreedyNoRas with { MaxNewTokens = 2 });
        text.Next(TextLogits(1), default);
        Assert.False(text.Finished);
        text.Next(TextLogits(2), default);
        Assert.IsType<SamplerStep.Done>(text.Next(TextLogits(3), default));
    }

    [Fact]
    public void Closing_column_and_its_audio_eos_are_one_step_even_at_the_limit()
    {
        // K = 2: <|audio_out_bos|>, BOS column, one ramp column, the EOS column, the closing column = 5 steps
        var o = GreedyNoRas with { MaxNewTokens = 5 };
        var s = new HiggsSampler(Tokens(k: 2), o);
        s.Next(TextLogits(AudioOutBos), default);                // 1
        s.Next(default, default);                          // 2 BOS column
        s.Next(default, AudioLogits(7, 8));                      // 3 ramp
        s.Next(default, AudioLogits(Eos, 8));                    // 4 EOS on codebook 0: one column remains
        var closing = Assert.IsType<SamplerStep.Audio>(s.Next(default, AudioLogits(7, Eos))); // 5 closes, limit reached
        Assert.True(closing.EndsAudio);
        Assert.False(s.Finished);
        Assert.Equal(new SamplerStep.Text(AudioEos), s.Next(default, default));
        Assert.True(s.Finished);
        Assert.Equal(5, s.Steps);
    }

    [Fact]
    public void Revert_turns_generated_delayed_columns_back_into_codes()
    {
        const int k = 4, t = 6;
        var rng = new Random(5);
        var codes = new long[k, t];
        var framed = new long[k * (t + 2)]; // [BOS | codes | EOS], as the collator frames audio-out before delaying
        for (int r = 0; r < k; r++)
        {
            framed[r * (t + 2)] = Bos;
            framed[r * (t + 2) + t + 1] = Eos;
            for (int i = 0; i < t; i++) framed[r * (t + 2) + 1 + i] = codes[r, i] = rng.Next(0, 1024);
        }
        using var delayed = DelayPattern.Build(TorchSharp.torch.tensor(framed, new long[] { k, t + 2 }), Bos, Eos);
        var flat = delayed.data<long>().ToArray();
        int w = (int)delayed.shape[1];
        var columns = Enumerable.Range(0, w).Select(c => Enumerable.Range(0, k).Select(r => flat[r * w + c]).ToArray()).ToList();
        Assert.Equal(Enumerable.Repeat((long)Bos, k), columns[0]);  // the generated layout: all-BOS first ...
        Assert.Equal(Enumerable.Repeat((long)Eos, k), columns[^1]); // ... all-EOS last
        Assert.Equal(codes, DelayRevert.ToCodes(columns, k));

        // a stream marker inside the kept range is clipped to the last code, as serve_engine clips before trimming
        columns[2][1] = Eos;
        Assert.Equal(1023, DelayRevert.ToCodes(columns, k)[1, 0]);
        Assert.Equal(0, DelayRevert.ToCodes(columns.Take(k + 1).ToList(), k).GetLength(1));
    }

    [Fact]
    public void Sampler_output_reverts_to_the_codes_it_generated()
    {
        var s = IntoAudio(2, GreedyNoRas);
        s.Next(default, AudioLogits(7, 100));          // ramp: [7, BOS]
        s.Next(default, AudioLogits(8, 9));            // [8, 9]
        s.Next(default, AudioLogits(Eos, 10));         // codebook 0 ends: [EOS, 10]
        Assert.True(((SamplerStep.Audio)s.Next(default, AudioLogits(1, Eos))).EndsAudio); // closing [EOS, EOS]
        Assert.Equal(new long[,] { { 7, 8 }, { 9, 10 } }, DelayRevert.ToCodes(s.AudioSegments[0], 2));
    }
}
