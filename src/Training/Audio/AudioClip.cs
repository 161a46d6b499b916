namespace HiggsCluster.Training.Audio;

/// <summary>Mono float32 audio in [-1, 1) at a known sample rate.</summary>
public sealed class AudioClip
{
    public AudioClip(float[] samples, int sampleRate)
    {
        ArgumentNullException.ThrowIfNull(samples);
        if (sampleRate <= 0) throw new ArgumentOutOfRangeException(nameof(sampleRate), sampleRate, "sample rate must be positive");
        Samples = samples;
        SampleRate = sampleRate;
    }

    public float[] Samples { get; }
    public int SampleRate { get; }
    public double DurationSeconds => (double)Samples.Length / SampleRate;

    /// <summary>This clip at another rate (the same instance when the rate already matches).</summary>
    public AudioClip ResampleTo(int sampleRate, ResamplerPreset preset = ResamplerPreset.HighQuality) =>
        sampleRate == SampleRate ? this : new AudioClip(Resampler.Resample(Samples, SampleRate, sampleRate, preset), sampleRate);
}
