using HiggsCluster.Training.Audio;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Whisper;

[Trait("Category", "Whisper")]
public sealed class WhisperFeatureTests
{
    private static readonly Lazy<WhisperFeatureExtractor> Fe = new(() => new WhisperFeatureExtractor());

    [Theory]
    [InlineData(0.0, 0.0)]
    [InlineData(500.0, 7.5)]
    [InlineData(1000.0, 15.0)]
    [InlineData(6400.0, 42.0)]
    public void Slaney_mel_scale_is_linear_below_1kHz_and_log_above(double hz, double mel)
    {
        Assert.Equal(mel, WhisperMelFilters.HertzToMel(hz), 10);
        Assert.Equal(hz, WhisperMelFilters.MelToHertz(mel), 8);
    }

    [Fact]
    public void Corner_frequencies_span_0_to_8000_equally_in_mel()
    {
        var f = WhisperMelFilters.CornerFrequencies(128, 0, 8000);
        Assert.Equal(130, f.Length);
        Assert.Equal(0.0, f[0]);
        Assert.Equal(8000.0, f[^1], 6);
        // mel(8000) = 15 + 27 ln(8) / ln(6.4)
        double melMax = 15 + 27 * Math.Log(8.0) / Math.Log(6.4);
        for (int i = 0; i < f.Length; i++)
            Assert.Equal(melMax * i / 129.0, WhisperMelFilters.HertzToMel(f[i]), 9);
    }

    [Fact]
    public void Mel_filters_match_the_closed_form_triangles_with_slaney_area_norm()
    {
        var w = WhisperMelFilters.Create(201, 128, 0, 8000, 16000);
        var f = WhisperMelFilters.CornerFrequencies(128, 0, 8000);
        for (int m = 0; m < 128; m++)
        {
            double lo = f[m], mid = f[m + 1], hi = f[m + 2], height = 2.0 / (hi - lo);
            for (int b = 0; b < 201; b++)
            {
                double hz = 40.0 * b;
                double expected = hz <= lo || hz >= hi ? 0.0
                    : hz <= mid ? height * (hz - lo) / (mid - lo)
                    : height * (hi - hz) / (hi - mid);
                Assert.Equal(expected, w[b, m], 12);
            }
        }
        // Slaney norm: each triangle has unit area in Hz; wide (high) filters integrate to ~1 on the 40 Hz grid.
        for (int m = 100; m < 128; m++)
        {
            double area = 0;
            for (int b = 0; b < 201; b++) area += w[b, m] * 40.0;
            Assert.InRange(area, 0.97, 1.03);
        }
    }

    [Fact]
    public void Extractor_holds_the_filters_as_float32_mels_by_bins()
    {
        var t = Fe.Value.MelFilters;
        Assert.Equal(new long[] { 128, 201 }, t.shape);
        Assert.Equal(ScalarType.Float32, t.dtype);
        var w = WhisperMelFilters.Create(201, 128, 0, 8000, 16000);
        Assert.Equal((float)w[57, 30], t[30, 57].item<float>());
    }

    [Fact]
    public void Output_is_3000_frames_and_the_mask_counts_ceil_of_length_over_hop()
    {
        var lengths = new[] { 1, 159, 160, 161, 16_000, 480_000, 500_000 };
        var rng = new Random(1);
        var clips = lengths.Select(n => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() - 0.5)).ToArray()).ToList();
        using var r = Fe.Value.Extract(clips);
        Assert.Equal(new long[] { lengths.Length, 128, 3000 }, r.InputFeatures.shape);
        Assert.Equal(new long[] { lengths.Length, 3000 }, r.AttentionMask.shape);
        Assert.Equal(ScalarType.Int32, r.AttentionMask.dtype);
        for (int i = 0; i < lengths.Length; i++)
        {
            long capped = Math.Min(lengths[i], 480_000);
            long ones = (capped + 159) / 160;
            var row = r.AttentionMask[i];
            Assert.Equal(ones, row.sum().item<long>());
            if (ones < 3000) Assert.Equal(0, row[ones].item<int>());
            Assert.Equal(1, row[ones - 1].item<int>());
        }
    }

    [Fact]
    public void Silence_gives_minus_1_5_everywhere()
    {
        using var r = Fe.Value.Extract(new float[8000]);
        Assert.Equal(-1.5f, r.InputFeatures.min().item<float>(), 6);
        Assert.Equal(-1.5f, r.InputFeatures.max().item<float>(), 6);
    }

    [Fact]
    public void Short_clip_equals_the_same_clip_explicitly_zero_padded_to_30s()
    {
        // The explicitly padded clip takes the full-length transform; the short one skips the all-zero frames.
        var rng = new Random(2);
        var clip = Enumerable.Range(0, 23_456).Select(i => (float)(0.3 * Math.Sin(i * 0.05) + 0.1 * (rng.NextDouble() - 0.5))).ToArray();
        var padded = new float[480_000];
        clip.CopyTo(padded, 0);
        using var a = Fe.Value.Extract(clip);
        using var b = Fe.Value.Extract(padded);
        Assert.True(a.InputFeatures.allclose(b.InputFeatures, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Batched_call_floors_each_example_at_its_own_max()
    {
        var loud = Enumerable.Range(0, 16_000).Select(i => (float)Math.Sin(i * 0.1)).ToArray();
        var quiet = Enumerable.Range(0, 8_000).Select(i => (float)(1e-3 * Math.Sin(i * 0.07))).ToArray();
        using var both = Fe.Value.Extract(new[] { loud, quiet });
        using var q = Fe.Value.Extract(quiet);
        using var l = Fe.Value.Extract(loud);
        Assert.True(both.InputFeatures[1].allclose(q.InputFeatures[0], rtol: 0, atol: 1e-6));
        Assert.True(both.InputFeatures[0].allclose(l.InputFeatures[0], rtol: 0, atol: 1e-6));
        // each row's minimum is its own floor: max(rowmax - 2, log10(1e-10) scaled = -1.5)
        float loudMax = both.InputFeatures[0].max().item<float>(), quietMax = both.InputFeatures[1].max().item<float>();
        Assert.True(loudMax - quietMax > 0.5f, "test clips should differ in level");
        Assert.Equal(Math.Max(loudMax - 2f, -1.5f), both.InputFeatures[0].min().item<float>(), 4);
        Assert.Equal(Math.Max(quietMax - 2f, -1.5f), both.InputFeatures[1].min().item<float>(), 4);
    }

    [Fact]
    public void Features_match_a_direct_dft_written_independently()
    {
        // 0.1 s clip: 11 frames touch the signal; direct float64 DFT with a periodic Hann window and reflect padding.
        const int n = 1600, nfft = 400, hop = 160;
        var x = Enumerable.Range(0, n).Select(i => (float)(0.5 * Math.Sin(2 * Math.PI * 440 * i / 16000.0) + 0.2 * Math.Cos(2 * Math.PI * 3000 * i / 16000.0))).ToArray();
        using var r = Fe.Value.Extract(x);
        var w = WhisperMelFilters.Create(201, 128, 0, 8000, 16000);
        double Sample(long j)
        {
            // centre padding: reflect at the left edge, zeros (the 30 s pad) on the right for these frames
            if (j < 0) j = -j;
            return j < n ? x[j] : 0.0;
        }
        var logMel = new double[128, 3000];
        double globalMax = double.NegativeInfinity;
        for (int frame = 0; frame < 3000; frame++)
        {
            var power = new double[201];
            if (frame * hop - nfft / 2 < n)
            {
                for (int k = 0; k < 201; k++)
                {
                    double re = 0, im = 0;
                    for (int t = 0; t < nfft; t++)
                    {
                        double v = Sample((long)frame * hop - nfft / 2 + t) * (0.5 - 0.5 * Math.Cos(2 * Math.PI * t / nfft));
                        re += v * Math.Cos(2 * Math.PI * k * t / nfft);
                        im -= v * Math.Sin(2 * Math.PI * k * t / nfft);
                    }
                    power[k] = re * re + im * im;
                }
            }
            for (int m = 0; m < 128; m++)
            {
                double s = 0;
                for (int k = 0; k < 201; k++) s += w[k, m] * power[k];
                logMel[m, frame] = Math.Log10(Math.Max(s, 1e-10));
                globalMax = Math.Max(globalMax, logMel[m, frame]);
            }
        }
        var got = r.InputFeatures[0].data<float>().ToArray();
        double worst = 0;
        for (int m = 0; m < 128; m++)
            for (int frame = 0; frame < 3000; frame++)
            {
                double e = (Math.Max(logMel[m, frame], globalMax - 8) + 4) / 4;
                worst = Math.Max(worst, Math.Abs(e - got[m * 3000 + frame]));
            }
        Assert.True(worst < 2e-4, $"max |diff| {worst}");
    }
}
