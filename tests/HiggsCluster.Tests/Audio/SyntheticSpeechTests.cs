using HiggsCluster.Training.Audio;
using Xunit;

namespace HiggsCluster.Tests.Audio;

[Trait("Category", "Audio")]
public sealed class SyntheticSpeechTests
{
    [Fact]
    public void Same_seed_same_audio_other_seed_other_audio()
    {
        var a = SyntheticSpeech.Generate(1.5, 16000, seed: 3);
        var b = SyntheticSpeech.Generate(1.5, 16000, seed: 3);
        var c = SyntheticSpeech.Generate(1.5, 16000, seed: 4);
        Assert.Equal(24000, a.Length);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Has_speech_like_structure()
    {
        int rate = 24000;
        var x = SyntheticSpeech.Generate(4, rate, seed: 1);
        Assert.Equal(0.5f, x.Max(Math.Abs), 4);
        // 20 ms frames: some near-silent (pauses), some loud (syllables)
        int frame = rate / 50;
        var rms = Enumerable.Range(0, x.Length / frame)
            .Select(f => Math.Sqrt(x.Skip(f * frame).Take(frame).Sum(v => (double)v * v) / frame)).ToArray();
        Assert.Contains(rms, r => r < 1e-3);
        Assert.Contains(rms, r => r > 0.05);
        // energy mostly below 4 kHz: a 2-sample moving difference (high-pass) keeps far less energy than the signal
        double energy = x.Sum(v => (double)v * v);
        double diff = 0;
        for (int i = 1; i < x.Length; i++) diff += Math.Pow(x[i] - x[i - 1], 2);
        Assert.True(diff < 0.5 * energy, $"high-frequency energy ratio {diff / energy:F2}");
    }

    [Fact]
    public void Bad_arguments_are_refused()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticSpeech.Generate(0, 16000, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SyntheticSpeech.Generate(1, 100, 1));
    }
}
