using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>
/// TEMPORARY: torchaudio.functional.resample (sinc_interp_hann, width 6, rolloff 0.99) in float32, used only until
/// HiggsCluster.Training.Audio.Resampler (ResamplerPreset.TorchaudioExact) lands; delete at merge.
/// </summary>
internal static class TorchaudioResampleShim
{
    /// <summary>(B, N) → (B, ceil(N·to/from)).</summary>
    public static Tensor Resample(Tensor x, int fromRate, int toRate)
    {
        int g = Gcd(fromRate, toRate);
        int orig = fromRate / g, neu = toRate / g;
        if (orig == neu) return x.clone();
        const double lowpassWidth = 6, rolloff = 0.99;
        double baseFreq = Math.Min(orig, neu) * rolloff;
        int width = (int)Math.Ceiling(lowpassWidth * orig / baseFreq);
        using var scope = torch.NewDisposeScope();
        // the kernel is built with the same float32 operation sequence as torchaudio
        var idx = arange(-width, width + orig, dtype: ScalarType.Float32).unsqueeze(0).unsqueeze(0) / orig;
        var t = arange(0, -neu, -1, dtype: ScalarType.Float32).unsqueeze(1).unsqueeze(2) / neu + idx;
        t = t * baseFreq;
        t = t.clamp(-lowpassWidth, lowpassWidth);
        var window = cos(t * Math.PI / lowpassWidth / 2).pow(2);
        t = t * Math.PI;
        double scale = baseFreq / orig;
        var kernels = where(t.eq(0), tensor(1.0f), sin(t) / t);
        kernels = (kernels * (window * scale)).to(x.device);
        long n = x.shape[1], b = x.shape[0];
        var padded = F.pad(x, [width, width + orig]);
        var y = F.conv1d(padded.unsqueeze(1), kernels, null, stride: orig);
        y = y.transpose(1, 2).reshape(b, -1);
        long target = (neu * n + orig - 1) / orig;
        return y[.., ..(int)target].contiguous().MoveToOuterDisposeScope();
    }

    private static int Gcd(int a, int b) => b == 0 ? a : Gcd(b, a % b);
}
