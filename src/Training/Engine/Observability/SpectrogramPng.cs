namespace HiggsCluster.Training.Engine.Observability;

/// <summary>
/// A log-magnitude spectrogram of a clip as a PNG: time left to right, frequency bottom to top (0 to Nyquist), 80 dB
/// of range under the clip's loudest bin, on a dark-to-bright colour ramp. Enough to see at a glance whether a sample
/// is speech-like, silent, clipped, or cannot stop speaking.
/// </summary>
public static class SpectrogramPng
{
    public static void Write(string path, ReadOnlySpan<float> wave, int sampleRate, int fftSize = 512, int hop = 128)
    {
        int bins = fftSize / 2 + 1;
        int frames = Math.Max(1, (wave.Length - fftSize) / hop + 1);
        var window = new double[fftSize];
        for (int i = 0; i < fftSize; i++) window[i] = 0.5 - 0.5 * Math.Cos(2 * Math.PI * i / fftSize);
        var db = new double[frames, bins];
        double max = double.MinValue;
        var re = new double[fftSize]; var im = new double[fftSize];
        for (int f = 0; f < frames; f++)
        {
            for (int i = 0; i < fftSize; i++)
            {
                int at = f * hop + i;
                re[i] = at < wave.Length ? wave[at] * window[i] : 0; im[i] = 0;
            }
            Fft(re, im);
            for (int b = 0; b < bins; b++)
            {
                double v = 10 * Math.Log10(re[b] * re[b] + im[b] * im[b] + 1e-12);
                db[f, b] = v; if (v > max) max = v;
            }
        }
        int width = Math.Clamp(frames, 64, 1600), height = Math.Min(bins, 256);
        var rgb = new byte[width * height * 3];
        for (int x = 0; x < width; x++)
        {
            int f = (int)((long)x * frames / width);
            for (int y = 0; y < height; y++)
            {
                int b = (int)((long)(height - 1 - y) * bins / height);
                double t = Math.Clamp((db[f, b] - (max - 80)) / 80, 0, 1);
                var (r, g, bl) = Ramp(t);
                int o = (y * width + x) * 3;
                rgb[o] = r; rgb[o + 1] = g; rgb[o + 2] = bl;
            }
        }
        PngEncoder.WriteRgb(path, width, height, rgb);
    }

    /// <summary>Black → purple → orange → pale yellow, monotone in brightness.</summary>
    private static (byte, byte, byte) Ramp(double t)
    {
        double r = Math.Clamp(1.6 * t, 0, 1), g = Math.Clamp(1.8 * t - 0.6, 0, 1), b = Math.Clamp(t < 0.4 ? 1.5 * t : 0.6 - (t - 0.4) * 0.5 + Math.Max(0, t - 0.85) * 3, 0, 1);
        return ((byte)(255 * r), (byte)(255 * g), (byte)(255 * b));
    }

    /// <summary>In-place radix-2 FFT (length a power of two).</summary>
    private static void Fft(double[] re, double[] im)
    {
        int n = re.Length;
        for (int i = 1, j = 0; i < n; i++)
        {
            int bit = n >> 1;
            for (; (j & bit) != 0; bit >>= 1) j ^= bit;
            j ^= bit;
            if (i < j) { (re[i], re[j]) = (re[j], re[i]); (im[i], im[j]) = (im[j], im[i]); }
        }
        for (int len = 2; len <= n; len <<= 1)
        {
            double ang = -2 * Math.PI / len;
            double wr = Math.Cos(ang), wi = Math.Sin(ang);
            for (int i = 0; i < n; i += len)
            {
                double cr = 1, ci = 0;
                for (int k = 0; k < len / 2; k++)
                {
                    int a = i + k, b = a + len / 2;
                    double xr = re[b] * cr - im[b] * ci, xi = re[b] * ci + im[b] * cr;
                    re[b] = re[a] - xr; im[b] = im[a] - xi;
                    re[a] += xr; im[a] += xi;
                    double nr = cr * wr - ci * wi; ci = cr * wi + ci * wr; cr = nr;
                }
            }
        }
    }
}
