using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Audio;

/// <summary>Windowed-sinc resampler presets.</summary>
public enum ResamplerPreset
{
    /// <summary>
    /// Ingest quality (stands in for librosa's soxr_hq): Kaiser-windowed sinc, 64 zero-crossings each side,
    /// cutoff 0.95 of the lower Nyquist, zero latency, output length ceil(N·to/from) as librosa computes it.
    /// </summary>
    HighQuality,
    /// <summary>torchaudio.functional.resample(x, from, to) defaults: sinc_interp_hann, lowpass_filter_width 6, rolloff 0.99.</summary>
    TorchaudioExact,
}

/// <summary>
/// One polyphase windowed-sinc resampler (rates reduced by their gcd) with two kernels. Output sample m of
/// frame f = m / new, phase j = m % new, is Σ_k h[j][k] · x[f·orig + k − width], the input zero outside [0, N).
/// This is exactly torchaudio's padded, strided conv1d, so both presets are linear phase and centred.
/// </summary>
public static partial class Resampler
{
    public static float[] Resample(ReadOnlySpan<float> x, int fromRate, int toRate, ResamplerPreset preset = ResamplerPreset.HighQuality)
    {
        CheckRates(fromRate, toRate);
        if (fromRate == toRate) return x.ToArray();
        var bank = PolyphaseBank.Get(fromRate, toRate, preset, ScalarType.Float32);
        long m = OutputLength(x.Length, fromRate, toRate, preset);
        if (m > int.MaxValue) throw new ArgumentException($"resampled length {m} is too long for one array");
        var y = new float[m];
        bank.Apply(x, y);
        return y;
    }

    /// <summary>
    /// Resamples the last dimension of a floating-point tensor (any leading shape, any device) with a strided
    /// conv1d, as torchaudio does; the kernel is built in the tensor's dtype (float32 or float64).
    /// </summary>
    public static Tensor Resample(Tensor waveform, int fromRate, int toRate, ResamplerPreset preset = ResamplerPreset.HighQuality)
    {
        CheckRates(fromRate, toRate);
        if (!waveform.is_floating_point())
            throw new ArgumentException($"resampling needs a floating-point waveform, got {waveform.dtype}");
        if (waveform.dim() == 0) throw new ArgumentException("resampling needs at least one dimension (time)");
        if (fromRate == toRate) return waveform.alias();
        var dtype = waveform.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var bank = PolyphaseBank.Get(fromRate, toRate, preset, dtype);
        using var scope = NewDisposeScope();
        var shape = waveform.shape;
        long n = shape[^1];
        long m = OutputLength(n, fromRate, toRate, preset);
        var flat = waveform.to_type(dtype).reshape(-1, n);
        var kernel = bank.KernelTensor(dtype).to(waveform.device);
        var padded = nn.functional.pad(flat, new long[] { bank.Width, bank.Width + bank.Orig });
        var frames = nn.functional.conv1d(padded.unsqueeze(1), kernel, stride: bank.Orig);
        var y = frames.transpose(1, 2).reshape(flat.shape[0], -1);
        if (y.shape[1] < m) y = nn.functional.pad(y, new long[] { 0, m - y.shape[1] });
        var outShape = shape.ToArray();
        outShape[^1] = m;
        return y[.., ..(int)m].reshape(outShape).to_type(waveform.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Output length: torchaudio keeps ceil(new·N/orig) (reduced rates); librosa fixes the length to
    /// ceil(N · (to/from)) evaluated in double precision, which the HighQuality preset reproduces bit for bit.
    /// </summary>
    public static long OutputLength(long n, int fromRate, int toRate, ResamplerPreset preset = ResamplerPreset.HighQuality)
    {
        CheckRates(fromRate, toRate);
        if (fromRate == toRate) return n;
        if (preset == ResamplerPreset.TorchaudioExact)
        {
            int g = Gcd(fromRate, toRate);
            long orig = fromRate / g, neu = toRate / g;
            return (long)Math.Ceiling((double)(neu * n) / orig);
        }
        return (long)Math.Ceiling(n * ((double)toRate / fromRate));
    }

    internal static int Gcd(int a, int b)
    {
        while (b != 0) (a, b) = (b, a % b);
        return a;
    }

    private static void CheckRates(int fromRate, int toRate)
    {
        if (fromRate <= 0) throw new ArgumentOutOfRangeException(nameof(fromRate), fromRate, "sample rate must be positive");
        if (toRate <= 0) throw new ArgumentOutOfRangeException(nameof(toRate), toRate, "sample rate must be positive");
    }
}
