using HiggsCluster.Training.Generation;
using Xunit;

namespace HiggsCluster.Tests.Generation;

/// <summary>Hand-made ids and logits shared by the sampler tests: K codebooks of C = 1026 (1024 codes, BOS, EOS).</summary>
internal static class SamplerFixtures
{
    internal const int Vocab = 16, AudioOutBos = 10, AudioEos = 11, EndOfText = 12, EotId = 13;
    internal const int C = 1026, Bos = 1024, Eos = 1025;

    internal static GenerationTokens Tokens(int k = 4, bool delay = true) =>
        new(AudioOutBos, AudioEos, new long[] { EndOfText, EotId }, k, Bos, Eos, delay);

    internal static SamplingOptions GreedyNoRas => new() { Greedy = true, RasWindow = 0 };

    internal static float[] TextLogits(int best, float margin = 5f)
    {
        var l = new float[Vocab];
        l[best] = margin;
        return l;
    }

    /// <summary>Row r prefers codes[r] by a clear margin.</summary>
    internal static float[] AudioLogits(params long[] codes)
    {
        var l = new float[codes.Length * C];
        for (int r = 0; r < codes.Length; r++) l[r * C + codes[r]] = 20f;
        return l;
    }

    internal static long[] Col(SamplerStep step) => Assert.IsType<SamplerStep.Audio>(step).Column;

    /// <summary>Drives text → &lt;|audio_out_bos|&gt; → the all-BOS column; returns the sampler in audio mode.</summary>
    internal static HiggsSampler IntoAudio(int k, SamplingOptions o, bool delay = true)
    {
        var s = new HiggsSampler(Tokens(k, delay), o);
        Assert.Equal(new SamplerStep.Text(AudioOutBos), s.Next(TextLogits(AudioOutBos), default));
        Col(s.Next(default, default));
        Assert.True(s.InAudio);
        return s;
    }

    /// <summary>Every codebook prefers code 5 by a hair: greedy repeats it, RAS (raw softmax ≈ uniform) moves off it.</summary>
    internal static float[] BarelyFive(int k)
    {
        var l = new float[k * C];
        for (int r = 0; r < k; r++) l[r * C + 5] = 1e-3f;
        return l;
    }
}
