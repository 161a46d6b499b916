namespace HiggsCluster.Training.Audio;

/// <summary>
/// Speech-like test audio made from a seed: voiced syllables (harmonics of a gliding pitch shaped by three
/// vowel formants), fricative noise bursts and pauses. Meant for demo datasets, benches and tests; not speech.
/// </summary>
public static class SyntheticSpeech
{
    // (F1, F2, F3) in Hz for a few vowels, roughly /a/ /i/ /u/ /e/ /o/.
    private static readonly (double, double, double)[] Vowels =
    {
        (730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410),
    };

    public static float[] Generate(double seconds, int sampleRate, int seed)
    {
        if (!(seconds > 0) || double.IsInfinity(seconds)) throw new ArgumentOutOfRangeException(nameof(seconds), seconds, "must be a positive number of seconds");
        if (sampleRate < 4000) throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "must be at least 4000 Hz");
        long total = (long)Math.Round(seconds * sampleRate);
        if (total > int.MaxValue) throw new ArgumentOutOfRangeException(nameof(seconds), seconds, "too long for one array");
        var y = new double[total];
        var rng = new Random(seed);
        double speakerF0 = 95 + rng.NextDouble() * 130;    // one "speaker" per seed
        long pos = (long)(rng.NextDouble() * 0.15 * sampleRate);
        while (pos < total)
        {
            double kind = rng.NextDouble();
            long len;
            if (kind < 0.6)
            {
                len = (long)((0.08 + rng.NextDouble() * 0.2) * sampleRate);
                Voiced(y, pos, len, sampleRate, speakerF0, rng);
            }
            else if (kind < 0.8)
            {
                len = (long)((0.03 + rng.NextDouble() * 0.09) * sampleRate);
                Fricative(y, pos, len, sampleRate, rng);
            }
            else len = (long)((0.05 + rng.NextDouble() * 0.35) * sampleRate);
            pos += len + (long)(rng.NextDouble() * 0.03 * sampleRate);
        }
        double peak = 0;
        foreach (var v in y) peak = Math.Max(peak, Math.Abs(v));
        double gain = peak > 0 ? 0.5 / peak : 0;
        var result = new float[total];
        for (long i = 0; i < total; i++) result[i] = (float)(y[i] * gain);
        return result;
    }

    private static void Voiced(double[] y, long start, long len, int rate, double speakerF0, Random rng)
    {
        var (f1, f2, f3) = Vowels[rng.Next(Vowels.Length)];
        double f0a = speakerF0 * (0.85 + rng.NextDouble() * 0.3);
        double f0b = f0a * (0.75 + rng.NextDouble() * 0.5);      // pitch glide across the syllable
        double amp = 0.5 + rng.NextDouble() * 0.5;
        double maxHz = Math.Min(5000, 0.45 * rate);
        int harmonics = (int)(maxHz / Math.Min(f0a, f0b));
        var gains = new double[harmonics + 1];
        var phases = new double[harmonics + 1];
        for (int k = 1; k <= harmonics; k++) phases[k] = rng.NextDouble() * 2 * Math.PI;
        double phase = 0;
        for (long n = 0; n < len && start + n < y.Length; n++)
        {
            double u = (double)n / len;
            double f0 = f0a + (f0b - f0a) * u;
            phase += 2 * Math.PI * f0 / rate;
            double s = 0;
            for (int k = 1; k <= harmonics; k++)
            {
                double f = k * f0;
                if (f > maxHz) break;
                if ((n & 63) == 0 || gains[k] == 0) gains[k] = FormantGain(f, f1, f2, f3) / k;
                s += gains[k] * Math.Sin(k * phase + phases[k]);
            }
            y[start + n] += amp * Envelope(n, len, rate) * s;
        }
    }

    private static double FormantGain(double f, double f1, double f2, double f3) =>
        1.0 / (1 + Sq((f - f1) / 90)) + 0.6 / (1 + Sq((f - f2) / 120)) + 0.3 / (1 + Sq((f - f3) / 160)) + 0.02;

    private static void Fricative(double[] y, long start, long len, int rate, Random rng)
    {
        double amp = 0.05 + rng.NextDouble() * 0.1, prev = 0;
        for (long n = 0; n < len && start + n < y.Length; n++)
        {
            double white = rng.NextDouble() * 2 - 1;
            double high = white - 0.85 * prev;                    // crude high-pass: hiss, not rumble
            prev = white;
            y[start + n] += amp * Envelope(n, len, rate) * high;
        }
    }

    /// <summary>10 ms raised-cosine attack and release.</summary>
    private static double Envelope(long n, long len, int rate)
    {
        double ramp = Math.Min(0.01 * rate, len / 2.0);
        double edge = Math.Min(n, len - 1 - n);
        return edge >= ramp ? 1 : 0.5 - 0.5 * Math.Cos(Math.PI * edge / ramp);
    }

    private static double Sq(double x) => x * x;
}
