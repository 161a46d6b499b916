using HiggsCluster.Training.Audio;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Audio;

[Trait("Category", "Audio")]
public sealed class ResamplerTests
{
    private static float[] Tones(int rate, int n, params (double Hz, double Amp, double Phase)[] tones)
    {
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double s = 0;
            foreach (var (hz, amp, ph) in tones) s += amp * Math.Sin(2 * Math.PI * hz * i / rate + ph);
            x[i] = (float)s;
        }
        return x;
    }

    private static double[] TonesExact(int rate, int n, params (double Hz, double Amp, double Phase)[] tones)
    {
        var x = new double[n];
        for (int i = 0; i < n; i++)
            foreach (var (hz, amp, ph) in tones) x[i] += amp * Math.Sin(2 * Math.PI * hz * i / rate + ph);
        return x;
    }

    /// <summary>SNR in dB of <paramref name="actual"/> against <paramref name="reference"/> over the middle 80%.</summary>
    private static double MiddleSnrDb(float[] actual, double[] reference)
    {
        int a = reference.Length / 10, b = reference.Length - reference.Length / 10;
        double sig = 0, err = 0;
        for (int i = a; i < b; i++)
        {
            sig += reference[i] * reference[i];
            double d = actual[i] - reference[i];
            err += d * d;
        }
        return 10 * Math.Log10(sig / Math.Max(err, 1e-300));
    }

    private static double MiddleRms(ReadOnlySpan<float> x)
    {
        int a = x.Length / 10, b = x.Length - x.Length / 10;
        double s = 0;
        for (int i = a; i < b; i++) s += (double)x[i] * x[i];
        return Math.Sqrt(s / (b - a));
    }

    [Theory]
    [InlineData(44100, 24000, 440.0, 5000.0, 10000.0)]
    [InlineData(48000, 16000, 440.0, 3000.0, 6700.0)]
    [InlineData(16000, 24000, 300.0, 2500.0, 6500.0)]
    [InlineData(22050, 16000, 150.0, 4100.0, 7000.0)]
    public void HighQuality_in_band_tones_match_the_analytic_signal_with_zero_latency(int from, int to, double f1, double f2, double f3)
    {
        var tones = new[] { (f1, 0.4, 0.3), (f2, 0.3, 1.1), (f3, 0.2, 2.0) };
        var x = Tones(from, from, tones);               // 1 s
        var y = Resampler.Resample(x, from, to);
        var reference = TonesExact(to, y.Length, tones); // same tones, same phase, no delay
        double snr = MiddleSnrDb(y, reference);
        TestContext.Current.TestOutputHelper?.WriteLine($"{from}->{to}: SNR {snr:F1} dB");
        Assert.True(snr >= 100, $"{from}->{to}: SNR {snr:F1} dB < 100 dB");
    }

    [Theory]
    [InlineData(44100, 24000, 13000.0)]
    [InlineData(48000, 16000, 8800.0)]
    [InlineData(48000, 16000, 15000.0)]
    [InlineData(44100, 16000, 12000.0)]
    public void HighQuality_rejects_tones_above_the_new_nyquist_by_100_dB(int from, int to, double hz)
    {
        var x = Tones(from, from, (hz, 0.9, 0.5));
        var y = Resampler.Resample(x, from, to);
        double db = 20 * Math.Log10(MiddleRms(y) / MiddleRms(x));
        TestContext.Current.TestOutputHelper?.WriteLine($"{from}->{to} tone {hz} Hz: {-db:F1} dB rejection");
        Assert.True(db <= -100, $"{from}->{to} tone {hz} Hz: only {-db:F1} dB rejection");
    }

    [Theory]
    [InlineData(48000, 16000, ResamplerPreset.HighQuality)]
    [InlineData(48000, 16000, ResamplerPreset.TorchaudioExact)]
    [InlineData(16000, 48000, ResamplerPreset.HighQuality)]
    [InlineData(24000, 16000, ResamplerPreset.TorchaudioExact)]
    public void Impulse_response_is_centred_on_the_impulse_and_symmetric(int from, int to, ResamplerPreset preset)
    {
        int g = (int)System.Numerics.BigInteger.GreatestCommonDivisor(from, to), orig = from / g, neu = to / g;
        int n0 = 600 * orig;                 // lands exactly on output sample 600·neu
        int centre = 600 * neu;
        var x = new float[1200 * orig];
        x[n0] = 1f;
        var y = Resampler.Resample(x, from, to, preset);
        int peak = Array.IndexOf(y, y.Max());
        Assert.Equal(centre, peak);
        for (int d = 1; d < 200; d++)
            Assert.True(Math.Abs(y[centre + d] - y[centre - d]) <= 1e-7,
                $"asymmetric at ±{d}: {y[centre + d]} vs {y[centre - d]}");
    }

    [Theory]
    [InlineData(ResamplerPreset.HighQuality)]
    [InlineData(ResamplerPreset.TorchaudioExact)]
    public void Equal_rates_return_an_identical_copy(ResamplerPreset preset)
    {
        var x = Tones(24000, 1000, (1234.0, 0.5, 0.0));
        var y = Resampler.Resample(x, 24000, 24000, preset);
        Assert.Equal(x, y);
        Assert.NotSame(x, y);
    }

    [Theory]
    [InlineData(44100, 24000)]
    [InlineData(24000, 16000)]
    [InlineData(8000, 24000)]
    [InlineData(22050, 16000)]
    public void Output_length_is_the_ceiling_of_the_rate_ratio(int from, int to)
    {
        for (int n = 0; n < 5000; n += 61)
        {
            long exact = ((long)n * to + from - 1) / from;
            Assert.Equal(exact, Resampler.OutputLength(n, from, to, ResamplerPreset.TorchaudioExact));
            // librosa evaluates ceil(n * (to / from)) in double: it can only exceed the exact value when n·to/from is an integer.
            long hq = Resampler.OutputLength(n, from, to, ResamplerPreset.HighQuality);
            Assert.True(hq == exact || (hq == exact + 1 && (long)n * to % from == 0), $"n {n}: {hq} vs {exact}");
            var x = new float[n];
            Assert.Equal(exact, Resampler.Resample(x, from, to, ResamplerPreset.TorchaudioExact).Length);
            Assert.Equal(hq, Resampler.Resample(x, from, to, ResamplerPreset.HighQuality).Length);
        }
    }

    [Theory]
    [InlineData(44100, 24000)]
    [InlineData(48000, 16000)]
    [InlineData(16000, 24000)]
    [InlineData(8000, 44100)]
    public void HighQuality_dc_gain_is_one(int from, int to)
    {
        var x = Enumerable.Repeat(0.5f, from).ToArray();
        var y = Resampler.Resample(x, from, to);
        for (int i = y.Length / 4; i < 3 * y.Length / 4; i++)
            Assert.True(Math.Abs(y[i] - 0.5) <= 0.5e-5, $"sample {i}: {y[i]}");
    }

    /// <summary>torchaudio's resampler written straight from its definition: y[m] = Σ_i x[i]·h((i/orig − m/new)·base).</summary>
    private static double[] NaiveTorchaudio(double[] x, int from, int to)
    {
        int g = (int)System.Numerics.BigInteger.GreatestCommonDivisor(from, to), orig = from / g, neu = to / g;
        double lw = 6, baseFreq = Math.Min(orig, neu) * 0.99;
        long m = (long)Math.Ceiling((double)neu * x.Length / orig);
        var y = new double[m];
        for (long k = 0; k < m; k++)
        {
            double centre = (double)k * orig / neu;         // output time in input samples
            long lo = (long)Math.Floor(centre - lw * orig / baseFreq) - 1, hi = (long)Math.Ceiling(centre + lw * orig / baseFreq) + 1;
            double acc = 0;
            for (long i = Math.Max(0, lo); i <= Math.Min(x.Length - 1, hi); i++)
            {
                double t = ((double)i / orig - (double)k / neu) * baseFreq;
                if (Math.Abs(t) >= lw) continue;
                double win = Math.Cos(Math.PI * t / (2 * lw));
                double sinc = t == 0 ? 1 : Math.Sin(Math.PI * t) / (Math.PI * t);
                acc += x[i] * sinc * win * win * baseFreq / orig;
            }
            y[k] = acc;
        }
        return y;
    }

    [Theory]
    [InlineData(24000, 16000, 2e-6)]
    [InlineData(16000, 24000, 2e-6)]
    [InlineData(44100, 16000, 2e-5)]
    [InlineData(22050, 24000, 2e-5)]
    [InlineData(48000, 44100, 2e-5)]
    public void TorchaudioExact_agrees_with_a_naive_float64_implementation(int from, int to, double float32Tol)
    {
        var rng = new Random(from + to);
        int n = 3000 + rng.Next(100);
        var xd = new double[n];
        for (int i = 0; i < n; i++) xd[i] = (rng.NextDouble() - 0.5) * 1.6;
        var xf = xd.Select(v => (float)v).ToArray();
        var naive = NaiveTorchaudio(xf.Select(v => (double)v).ToArray(), from, to);

        // A float32 waveform gets torchaudio's float32-evaluated kernel: with large reduced rates (441/160) the
        // rounding of t = (i/orig - j/new)·base in float32 moves taps by ~1e-6, as it does in torchaudio.
        var y32 = Resampler.Resample(xf, from, to, ResamplerPreset.TorchaudioExact);
        Assert.Equal(naive.Length, y32.Length);
        for (int i = 0; i < naive.Length; i++)
            Assert.True(Math.Abs(y32[i] - naive[i]) <= float32Tol, $"float32 sample {i}: {y32[i]} vs {naive[i]}");

        // float64 waveforms get the float64 kernel (torchaudio evaluates it in the waveform's dtype).
        using var scope = NewDisposeScope();
        var y64 = Resampler.Resample(tensor(xf.Select(v => (double)v).ToArray()), from, to, ResamplerPreset.TorchaudioExact).data<double>().ToArray();
        Assert.Equal(naive.Length, y64.Length);
        for (int i = 0; i < naive.Length; i++)
            Assert.True(Math.Abs(y64[i] - naive[i]) <= 1e-12, $"float64 sample {i}: {y64[i]} vs {naive[i]}");
    }

    [Theory]
    [InlineData(ResamplerPreset.HighQuality)]
    [InlineData(ResamplerPreset.TorchaudioExact)]
    public void Tensor_overload_resamples_each_row_like_the_span_overload(ResamplerPreset preset)
    {
        using var scope = NewDisposeScope();
        var a = Tones(44100, 5000, (700.0, 0.5, 0.2));
        var b = Tones(44100, 5000, (3100.0, 0.3, 1.0));
        var batch = stack(new[] { tensor(a), tensor(b) }).reshape(2, 1, 5000);
        var y = Resampler.Resample(batch, 44100, 24000, preset);
        long m = Resampler.OutputLength(5000, 44100, 24000, preset);
        Assert.Equal(new long[] { 2, 1, m }, y.shape);
        var ya = Resampler.Resample(a, 44100, 24000, preset);
        var yb = Resampler.Resample(b, 44100, 24000, preset);
        var rows = y.reshape(2, m);
        var ra = rows[0].data<float>().ToArray();
        var rb = rows[1].data<float>().ToArray();
        for (int i = 0; i < m; i++)
        {
            Assert.True(Math.Abs(ra[i] - ya[i]) <= 2e-6, $"row 0 sample {i}");
            Assert.True(Math.Abs(rb[i] - yb[i]) <= 2e-6, $"row 1 sample {i}");
        }
    }

    [Fact]
    public void Bad_rates_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => Resampler.Resample(new float[10], 0, 16000));
        Assert.Throws<ArgumentOutOfRangeException>(() => Resampler.Resample(new float[10], 16000, -1));
    }
}
