using HiggsCluster.Training.Collation;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Collation;

[Trait("Category", "Collator")]
public sealed class CollatorTests
{
    // Token ids of the golden cases: <|AUDIO|> 100, <|AUDIO_OUT|> 101, pad 102, audio_bos 95, audio_eos 96, audio_out_bos 97.
    private const long In = 100, Out = 101, Pad = 102, ABos = 95, AEos = 96, OutBos = 97;

    private static HiggsAudioCollatorOptions Opts(bool whisper = false, bool delay = false, int roundTo = 8, bool padLeft = false,
                                                  bool audioInTokens = true, bool maskOutLabel = false) => new()
    {
        AudioInTokenId = In, AudioOutTokenId = Out, PadTokenId = Pad, AudioStreamBosId = 8, AudioStreamEosId = 9,
        RoundTo = roundTo, PadLeft = padLeft, EncodeWhisperEmbed = whisper, ReturnAudioInTokens = audioInTokens,
        AudioNumCodebooks = 8, UseDelayPattern = delay, MaskAudioOutTokenLabel = maskOutLabel,
    };

    /// <summary>Codes [8, t] with value (first + column) % 8 so segments are distinguishable.</summary>
    private static long[,] Codes(int t, int first)
    {
        var c = new long[8, t];
        for (int k = 0; k < 8; k++) for (int j = 0; j < t; j++) c[k, j] = (first + j + k) % 8;
        return c;
    }

    private static ChatMLDatasetSample Sample(long[] ids, long[]? labels, IList<long[,]> audios, float[]? wave = null, float? reward = null)
    {
        int total = audios.Sum(a => a.GetLength(1));
        var concat = new long[8 * total];
        var starts = new long[audios.Count];
        int col = 0;
        for (int a = 0; a < audios.Count; a++)
        {
            starts[a] = col;
            for (int k = 0; k < 8; k++) for (int j = 0; j < audios[a].GetLength(1); j++) concat[k * total + col + j] = audios[a][k, j];
            col += audios[a].GetLength(1);
        }
        return new ChatMLDatasetSample
        {
            InputIds = tensor(ids),
            LabelIds = labels is null ? null : tensor(labels),
            AudioIdsConcat = tensor(concat, new long[] { 8, total }),
            AudioIdsStart = tensor(starts),
            AudioWaveformsConcat = tensor(wave ?? Array.Empty<float>()),
            AudioWaveformsStart = wave is null ? zeros(0, dtype: ScalarType.Int64) : tensor(new long[] { 0 }),
            AudioSampleRate = wave is null ? zeros(0) : tensor(new float[] { 16000 }),
            AudioSpeakerIndices = full(audios.Count, -1L, dtype: ScalarType.Int64),
            Reward = reward,
        };
    }

    private static long[,] ToArray2(Tensor t)
    {
        var d = t.data<long>().ToArray();
        var r = new long[t.shape[0], t.shape[1]];
        for (int i = 0; i < t.shape[0]; i++) for (int j = 0; j < t.shape[1]; j++) r[i, j] = d[i * t.shape[1] + j];
        return r;
    }

    [Fact]
    public void Delay_pattern_matches_the_hand_worked_example()
    {
        // K = 3, T = 2 codes (a b / c d / e f), bos B = 1024, pad P = 1025
        var x = tensor(new long[] { 1, 2, 3, 4, 5, 6 }, new long[] { 3, 2 });
        const long B = 1024, P = 1025;
        var expected = new long[,]
        {
            { 1, 2, P, P },
            { B, 3, 4, P },
            { B, B, 5, 6 },
        };
        Assert.Equal(expected, ToArray2(DelayPattern.Build(x, B, P)));
        Assert.Equal(new long[] { 1, 2, 3, 4, 5, 6 }, DelayPattern.Revert(DelayPattern.Build(x, B, P)).contiguous().data<long>().ToArray());
    }

    [Fact]
    public void Delayed_audio_out_and_labels_follow_the_spec_layout()
    {
        // one segment of T = 2 codes; input [8 c 9] delayed with bos 8 / pad 9, labels [-100 c 9] delayed with -100
        var ids = new long[] { 1, OutBos, Out, AEos, 2 };
        var labels = new long[] { -100, OutBos, Out, AEos, 2 };
        var codes = Codes(2, 3);
        using var c = new HiggsAudioCollator(Opts(delay: true));
        using var b = c.Collate(new[] { Sample(ids, labels, new[] { codes }) });
        var a = ToArray2(b.AudioOutIds!);
        var y = ToArray2(b.LabelAudioIds!);
        Assert.Equal(new long[] { 8, 2 + 2 + 7 }, b.AudioOutIds!.shape);
        for (int k = 0; k < 8; k++)
        {
            for (int j = 0; j < 11; j++)
            {
                int p = j - k; // position in [bos, c0, c1, eos]
                long ea = p < 0 ? 8 : p == 0 ? 8 : p <= 2 ? codes[k, p - 1] : 9;
                long ey = p <= 0 ? -100 : p <= 2 ? codes[k, p - 1] : p == 3 ? 9 : -100;
                Assert.Equal(ea, a[k, j]);
                Assert.Equal(ey, y[k, j]);
            }
        }
    }

    [Fact]
    public void Labels_are_minus100_codes_eos_and_all_minus100_for_an_untrained_segment()
    {
        // reference audio-out with label -100 then a trained target; group_loc is one entry per sample
        var ids = new long[] { 1, OutBos, Out, AEos, 2, OutBos, Out, AEos };
        var labels = new long[] { -100, -100, -100, -100, -100, OutBos, Out, AEos };
        var r = Codes(3, 0); var t = Codes(2, 5);
        using var c = new HiggsAudioCollator(Opts());
        using var b = c.Collate(new[] { Sample(ids, labels, new[] { r, t }) });
        Assert.Equal(new long[] { 0, 5 }, b.AudioOutIdsStart!.data<long>().ToArray());
        Assert.Equal(new long[] { 0 }, b.AudioOutIdsStartGroupLoc!.data<long>().ToArray());
        var y = ToArray2(b.LabelAudioIds!);
        var a = ToArray2(b.AudioOutIds!);
        for (int k = 0; k < 8; k++)
        {
            for (int j = 0; j < 5; j++) Assert.Equal(-100, y[k, j]);
            Assert.Equal(8, a[k, 5]);
            Assert.Equal(-100, y[k, 5]);
            Assert.Equal(t[k, 0], y[k, 6]);
            Assert.Equal(t[k, 1], y[k, 7]);
            Assert.Equal(9, y[k, 8]);
            Assert.Equal(9, a[k, 8]);
        }
    }

    [Theory]
    [InlineData(8, false, 16)]
    [InlineData(1, false, 11)]
    [InlineData(1, true, 11)]
    [InlineData(4, true, 12)]
    public void Text_is_padded_to_round_to_on_the_chosen_side(int roundTo, bool padLeft, int expectedLen)
    {
        var s0 = Sample(new long[] { 1, 2, 3, 4, 5 }, new long[] { -100, -100, 3, 4, 5 }, Array.Empty<long[,]>());
        var s1 = Sample(Enumerable.Range(10, 11).Select(v => (long)v).ToArray(), Enumerable.Range(10, 11).Select(v => (long)v).ToArray(), Array.Empty<long[,]>());
        using var c = new HiggsAudioCollator(Opts(roundTo: roundTo, padLeft: padLeft));
        using var b = c.Collate(new[] { s0, s1 });
        Assert.Equal(new long[] { 2, expectedLen }, b.InputIds.shape);
        Assert.Equal(new long[] { 2, expectedLen }, b.LabelIds!.shape);
        var ids = ToArray2(b.InputIds); var att = ToArray2(b.AttentionMask); var lab = ToArray2(b.LabelIds!);
        int pad0 = expectedLen - 5;
        for (int j = 0; j < expectedLen; j++)
        {
            bool isPad = padLeft ? j < pad0 : j >= 5;
            int src = padLeft ? j - pad0 : j;
            Assert.Equal(isPad ? Pad : src + 1, ids[0, j]);
            Assert.Equal(isPad ? 0 : 1, att[0, j]);
            Assert.Equal(isPad ? -100 : new long[] { -100, -100, 3, 4, 5 }[src], lab[0, j]);
        }
        Assert.Equal(11, b.AttentionMask[1].sum().item<long>());
        Assert.Equal(0, b.AudioOutIds!.shape[1]);
        Assert.Null(b.AudioOutIdsStartGroupLoc);
    }

    private static ChatMLDatasetSample LongAudioInSample(int samples)
    {
        var wave = Enumerable.Range(0, samples).Select(i => (float)(0.1 * Math.Sin(i * 0.01))).ToArray();
        var ids = new long[] { 1, ABos, In, AEos, 2 };
        return Sample(ids, new long[] { -100, -100, -100, -100, 2 }, new[] { Codes(4, 1) }, wave);
    }

    [Fact]
    public void Audio_in_over_30s_is_chunked_and_its_tokens_duplicated()
    {
        const int n = 480_000 + 16_000; // 31 s
        using var c = new HiggsAudioCollator(Opts(whisper: true, audioInTokens: false));
        using var b = c.Collate(new[] { LongAudioInSample(n) });
        Assert.Equal(new long[] { 1, ABos, In, AEos, ABos, In, AEos, 2 }, b.InputIds[0, ..8].data<long>().ToArray());
        Assert.Equal(new long[] { -100, -100, -100, -100, -100, -100, -100, 2 }, b.LabelIds![0, ..8].data<long>().ToArray());
        Assert.Equal(new long[] { 2, 128, 3000 }, b.AudioFeatures!.shape);
        Assert.Equal(3000, b.AudioFeatureAttentionMask![0].sum().item<long>());
        Assert.Equal(100, b.AudioFeatureAttentionMask![1].sum().item<long>());
        Assert.Null(b.AudioInIds);
    }

    [Fact]
    public void Audio_in_over_30s_with_audio_in_tokens_fails_like_upstream()
    {
        using var c = new HiggsAudioCollator(Opts(whisper: true));
        var e = Assert.Throws<UpstreamIndexException>(() => c.Collate(new[] { LongAudioInSample(480_001) }));
        Assert.Equal(1, e.Index);
        Assert.Equal(1, e.Size);
        Assert.Contains("chunk", e.Message);
        // without Whisper there is no chunking, so the same sample collates
        using var plain = new HiggsAudioCollator(Opts());
        using var b = plain.Collate(new[] { LongAudioInSample(480_001) });
        Assert.Equal(new long[] { 8, 6 }, b.AudioInIds!.shape);
    }

    [Fact]
    public void Mask_audio_out_label_edits_the_sample_in_place_after_reading_the_flags()
    {
        var ids = new long[] { 1, OutBos, Out, AEos };
        var s = Sample(ids, new long[] { -100, OutBos, Out, AEos }, new[] { Codes(2, 0) });
        using var c = new HiggsAudioCollator(Opts(maskOutLabel: true));
        using (var b = c.Collate(new[] { s }))
        {
            Assert.Equal(-100, b.LabelIds![0, 2].item<long>());
            Assert.Equal(0, b.LabelAudioIds![0, 1].item<long>()); // still trained
        }
        Assert.Equal(-100, s.LabelIds![2].item<long>());
        using var again = c.Collate(new[] { s });
        Assert.Equal(-100, again.LabelAudioIds!.max().item<long>()); // now read as untrained
    }

    [Fact]
    public void Reward_survives_only_without_whisper_and_no_labels_means_null_label_fields()
    {
        var s = Sample(new long[] { 1, OutBos, Out, AEos }, null, new[] { Codes(2, 0) }, reward: 0.5f);
        using var off = new HiggsAudioCollator(Opts());
        using var b1 = off.Collate(new[] { s });
        Assert.Equal(new[] { 0.5f }, b1.Reward!.data<float>().ToArray());
        Assert.Null(b1.LabelIds);
        Assert.Null(b1.LabelAudioIds);
        using var on = new HiggsAudioCollator(Opts(whisper: true));
        using var b2 = on.Collate(new[] { s });
        Assert.Equal(0, b2.Reward!.shape[0]);
        Assert.Equal(new long[] { 0, 128, 3000 }, b2.AudioFeatures!.shape);
    }

    [Fact]
    public void Mixed_label_presence_is_refused_with_the_sample_named()
    {
        var a = Sample(new long[] { 1, OutBos, Out, AEos }, new long[] { 1, OutBos, Out, AEos }, new[] { Codes(2, 0) });
        var b = Sample(new long[] { 1, 2 }, null, Array.Empty<long[,]>());
        using var c = new HiggsAudioCollator(Opts());
        var e = Assert.Throws<InvalidDataException>(() => c.Collate(new[] { a, b }));
        Assert.Contains("sample 1", e.Message);
    }

    [Fact]
    public void Cal_num_tokens_counts_text_whisper_embeds_and_embedded_codes()
    {
        // 12 tokens with one <|AUDIO|> (4 codes, 1 s of 16 kHz audio) and two <|AUDIO_OUT|> (3 and 2 codes)
        var ids = new long[] { 1, ABos, In, AEos, 2, OutBos, Out, AEos, 3, OutBos, Out, AEos };
        var s = Sample(ids, null, new[] { Codes(4, 0), Codes(3, 1), Codes(2, 2) }, new float[16000]);
        Assert.Equal(9 + 25 + 5, s.CalNumTokens(audioInTokenId: In, audioOutTokenId: Out));
        Assert.Equal(9 + 25 + 4 + 5, s.CalNumTokens(encodeAudioInTokens: true, audioInTokenId: In, audioOutTokenId: Out));
        Assert.Equal(9 + 4, s.CalNumTokens(encodeWhisperEmbed: false, encodeAudioInTokens: true, encodeAudioOutTokens: false, audioInTokenId: In, audioOutTokenId: Out));
        Assert.Equal(3, s.NumAudios());
        Assert.Equal(new long[] { 8, 3 }, s.GetAudioCodes(1).shape);
        Assert.Throws<UpstreamIndexException>(() => s.GetAudioCodes(3));
        Assert.Null(s.GetAudioCodesLabels(0));
        Assert.Equal(16000, s.GetWv(0).Waveform.shape[0]);
    }

    private static readonly CollatorModelSettings Released3B = new(
        EncodeWhisperEmbed: false, EncodeAudioInTokens: true, UseDelayPattern: true, AudioNumCodebooks: 8,
        AudioStreamBosId: 1024, AudioStreamEosId: 1025, AudioInTokenId: 128015, AudioOutTokenId: 128016, PadTokenId: 128001);

    [Fact]
    public void Model_preset_follows_the_config_silently()
    {
        var warnings = new List<string>();
        var o = CollatorPresets.Create(CollatorPresets.Model, Released3B, warnings.Add);
        Assert.Empty(warnings);
        Assert.True(o.UseDelayPattern);
        Assert.False(o.EncodeWhisperEmbed);
        Assert.True(o.ReturnAudioInTokens);
        Assert.Equal(8, o.AudioNumCodebooks);
        Assert.Equal(128001, o.PadTokenId);
        Assert.Equal(1024, o.AudioStreamBosId);
    }

    [Fact]
    public void Seed_preset_warns_where_it_contradicts_the_config()
    {
        var warnings = new List<string>();
        var o = CollatorPresets.Create(CollatorPresets.Seed, Released3B, warnings.Add);
        Assert.False(o.UseDelayPattern);
        Assert.True(o.EncodeWhisperEmbed);
        Assert.False(o.MaskAudioOutTokenLabel);
        Assert.Equal(8, o.RoundTo);
        Assert.Contains(warnings, w => w.Contains("use_delay_pattern"));
        Assert.Contains(warnings, w => w.Contains("encode_whisper_embed"));
        Assert.DoesNotContain(warnings, w => w.Contains("audio_num_codebooks"));
        Assert.Throws<ArgumentException>(() => CollatorPresets.Create("nope", Released3B));
    }
}
