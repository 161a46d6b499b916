using System.Collections.Concurrent;
using System.Numerics;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Audio;

/// <summary>
/// The phase filters of one (reduced) rate pair: <c>New</c> rows of <c>2·Width + Orig</c> taps, row j giving the
/// output samples at times j/New after each input frame of Orig samples. Rows are stored widened to double;
/// leading/trailing exact zeros are skipped when applying (they cannot change a sum).
/// </summary>
internal sealed class PolyphaseBank
{
    /// <summary>HighQuality: zero-crossings of the cutoff sinc on each side of the centre.</summary>
    internal const int HqZeroCrossings = 64;
    /// <summary>HighQuality: cutoff as a fraction of the lower Nyquist; with the Kaiser transition the stop band starts just below Nyquist.</summary>
    internal const double HqRolloff = 0.94;
    /// <summary>HighQuality: Kaiser β for about 117 dB side-lobe rejection.</summary>
    internal const double HqKaiserBeta = 12.0;

    internal const int TaLowpassWidth = 6;
    internal const double TaRolloff = 0.99;

    private static readonly ConcurrentDictionary<(int, int, ResamplerPreset, ScalarType), PolyphaseBank> Cache = new();

    /// <summary>Largest orig·neu accepted (the kernel is about that many doubles): 2^25, i.e. a few hundred MB at most.</summary>
    internal const long MaxKernelCells = 1L << 25;

    public int Orig { get; }
    public int New { get; }
    public int Width { get; }
    public int Taps => 2 * Width + Orig;
    /// <summary>Row-major [New, Taps].</summary>
    public double[] Kernel { get; }
    private readonly int[] _first;
    private readonly int[] _count;

    private PolyphaseBank(int orig, int neu, int width, double[] kernel)
    {
        Orig = orig; New = neu; Width = width; Kernel = kernel;
        _first = new int[neu];
        _count = new int[neu];
        int taps = Taps;
        for (int j = 0; j < neu; j++)
        {
            int a = 0, b = taps - 1;
            while (a <= b && kernel[j * taps + a] == 0) a++;
            while (b >= a && kernel[j * taps + b] == 0) b--;
            _first[j] = a;
            _count[j] = b - a + 1;
        }
    }

    /// <summary>
    /// Why <paramref name="fromRate"/> cannot be resampled to <paramref name="toRate"/>, or null. The kernel holds neu
    /// phases of at least orig taps: co-prime rates (96,001 -> 24,000 Hz) would need billions of cells, overflowing int
    /// arithmetic or memory, so they are refused in words instead of an OverflowException.
    /// </summary>
    public static string? Refusal(int fromRate, int toRate)
    {
        if (fromRate <= 0 || toRate <= 0) return $"cannot resample {fromRate} Hz to {toRate} Hz: sample rates must be positive";
        int g = Resampler.Gcd(fromRate, toRate);
        long orig = fromRate / g, neu = toRate / g;
        return orig * neu <= MaxKernelCells ? null :
            $"cannot resample {fromRate} Hz to {toRate} Hz: the rates share no large common factor, so the polyphase kernel would need " +
            $"{orig} x {neu} taps or more (limit {MaxKernelCells}); convert the audio to a common rate first (e.g. ffmpeg -ar {toRate})";
    }

    public static PolyphaseBank Get(int fromRate, int toRate, ResamplerPreset preset, ScalarType dtype)
    {
        int g = Resampler.Gcd(fromRate, toRate);
        int orig = fromRate / g, neu = toRate / g;
        if (Refusal(fromRate, toRate) is { } why) throw new ArgumentException(why);
        // Only torchaudio's kernel depends on the dtype (it is evaluated in the waveform's precision).
        var key = (orig, neu, preset, preset == ResamplerPreset.TorchaudioExact ? dtype : ScalarType.Float64);
        return Cache.GetOrAdd(key, k => k.Item3 switch
        {
            ResamplerPreset.TorchaudioExact when k.Item4 == ScalarType.Float32 => TorchaudioFloat32(k.Item1, k.Item2),
            ResamplerPreset.TorchaudioExact => TorchaudioFloat64(k.Item1, k.Item2),
            ResamplerPreset.HighQuality => KaiserSinc(k.Item1, k.Item2),
            _ => throw new ArgumentOutOfRangeException(nameof(preset), preset, "unknown resampler preset"),
        });
    }

    /// <summary>
    /// torchaudio's sinc_interp_hann kernel for a float32 waveform: every step is a float32 tensor op there
    /// (python scalars are rounded to float32 first), so each step is rounded to float here in the same order.
    /// </summary>
    private static PolyphaseBank TorchaudioFloat32(int orig, int neu)
    {
        double baseFreq = Math.Min(orig, neu) * TaRolloff;
        int width = (int)Math.Ceiling(TaLowpassWidth * (double)orig / baseFreq);
        int taps = 2 * width + orig;
        float fBase = (float)baseFreq, fPi = (float)Math.PI, fScale = (float)(baseFreq / orig);
        float lw = TaLowpassWidth;
        var k = new double[neu * taps];
        for (int j = 0; j < neu; j++)
        {
            float phase = (float)(-j) / neu;
            for (int i = 0; i < taps; i++)
            {
                float idx = (float)(i - width) / orig;
                float t = (phase + idx) * fBase;
                t = Math.Clamp(t, -lw, lw);
                float c = MathF.Cos(t * fPi / lw / 2f);
                float window = c * c;
                t *= fPi;
                float sinc = t == 0f ? 1f : MathF.Sin(t) / t;
                k[j * taps + i] = sinc * (window * fScale);
            }
        }
        return new PolyphaseBank(orig, neu, width, k);
    }

    /// <summary>The same kernel for a float64 waveform (torchaudio then evaluates it in float64).</summary>
    private static PolyphaseBank TorchaudioFloat64(int orig, int neu)
    {
        double baseFreq = Math.Min(orig, neu) * TaRolloff;
        int width = (int)Math.Ceiling(TaLowpassWidth * (double)orig / baseFreq);
        int taps = 2 * width + orig;
        double lw = TaLowpassWidth, scale = baseFreq / orig;
        var k = new double[neu * taps];
        for (int j = 0; j < neu; j++)
        {
            double phase = (double)(-j) / neu;
            for (int i = 0; i < taps; i++)
            {
                double t = (phase + (double)(i - width) / orig) * baseFreq;
                t = Math.Clamp(t, -lw, lw);
                double c = Math.Cos(t * Math.PI / lw / 2);
                t *= Math.PI;
                double sinc = t == 0 ? 1 : Math.Sin(t) / t;
                k[j * taps + i] = sinc * (c * c * scale);
            }
        }
        return new PolyphaseBank(orig, neu, width, k);
    }

    /// <summary>Kaiser-windowed sinc evaluated in float64; taps at or beyond the last zero-crossing are exactly 0.</summary>
    private static PolyphaseBank KaiserSinc(int orig, int neu)
    {
        double baseFreq = Math.Min(orig, neu) * HqRolloff;
        double lw = HqZeroCrossings;
        int width = (int)Math.Ceiling(lw * orig / baseFreq);
        int taps = 2 * width + orig;
        double scale = baseFreq / orig, i0Beta = BesselI0(HqKaiserBeta);
        var k = new double[neu * taps];
        for (int j = 0; j < neu; j++)
        {
            for (int i = 0; i < taps; i++)
            {
                // (i - width)/orig - j/neu as one rational keeps the centre tap exact.
                double t = (double)((long)(i - width) * neu - (long)j * orig) / ((long)orig * neu) * baseFreq;
                if (Math.Abs(t) >= lw) continue;
                double r = t / lw;
                double window = BesselI0(HqKaiserBeta * Math.Sqrt(1 - r * r)) / i0Beta;
                double x = Math.PI * t;
                double sinc = t == 0 ? 1 : Math.Sin(x) / x;
                k[j * taps + i] = sinc * window * scale;
            }
        }
        return new PolyphaseBank(orig, neu, width, k);
    }

    /// <summary>Modified Bessel function of the first kind, order 0 (power series; converges for the β used here).</summary>
    internal static double BesselI0(double x)
    {
        double sum = 1, term = 1, q = x * x / 4;
        for (int k = 1; k < 500; k++)
        {
            term *= q / ((double)k * k);
            sum += term;
            if (term < sum * 1e-17) break;
        }
        return sum;
    }

    /// <summary>[New, 1, Taps] kernel for conv1d, in the given dtype.</summary>
    public Tensor KernelTensor(ScalarType dtype) =>
        tensor(Kernel, new long[] { New, 1, Taps }, ScalarType.Float64).to_type(dtype);

    /// <summary>y[m] for m in [0, y.Length): accumulates in double, rounds once.</summary>
    public void Apply(ReadOnlySpan<float> x, Span<float> y)
    {
        var xd = new double[x.Length];
        for (int i = 0; i < x.Length; i++) xd[i] = x[i];
        var yd = new float[y.Length];
        long work = (long)y.Length * Taps;
        const int block = 8192;
        int blocks = (y.Length + block - 1) / block;
        if (work < 4_000_000 || blocks < 2)
            ApplyRange(xd, yd, 0, y.Length);
        else
            Parallel.For(0, blocks, b => ApplyRange(xd, yd, b * block, Math.Min(yd.Length, (b + 1) * block)));
        yd.CopyTo(y);
    }

    private void ApplyRange(double[] x, float[] y, int from, int to)
    {
        int taps = Taps, n = x.Length;
        var kernel = Kernel;
        for (int m = from; m < to; m++)
        {
            int f = m / New, j = m - f * New;
            long start = (long)f * Orig - Width + _first[j];
            int count = _count[j];
            int kOff = j * taps + _first[j];
            double acc;
            if (start >= 0 && start + count <= n)
                acc = Dot(x.AsSpan((int)start, count), kernel.AsSpan(kOff, count));
            else
            {
                acc = 0;
                for (int i = 0; i < count; i++)
                {
                    long xi = start + i;
                    if (xi >= 0 && xi < n) acc += x[xi] * kernel[kOff + i];
                }
            }
            y[m] = (float)acc;
        }
    }

    private static double Dot(ReadOnlySpan<double> a, ReadOnlySpan<double> b)
    {
        int i = 0;
        double acc = 0;
        if (Vector.IsHardwareAccelerated && a.Length >= 2 * Vector<double>.Count)
        {
            var v0 = Vector<double>.Zero;
            var v1 = Vector<double>.Zero;
            int w = Vector<double>.Count;
            for (; i + 2 * w <= a.Length; i += 2 * w)
            {
                v0 += new Vector<double>(a.Slice(i, w)) * new Vector<double>(b.Slice(i, w));
                v1 += new Vector<double>(a.Slice(i + w, w)) * new Vector<double>(b.Slice(i + w, w));
            }
            acc = Vector.Sum(v0 + v1);
        }
        for (; i < a.Length; i++) acc += a[i] * b[i];
        return acc;
    }
}
