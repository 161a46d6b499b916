namespace HiggsCluster.Training.Audio;

/// <summary>Windowed-sinc resampler presets.</summary>
public enum ResamplerPreset
{
    /// <summary>Ingest quality: Hann-windowed sinc, 64 zero-crossings, rolloff 0.95 (soxr-HQ class, zero latency).</summary>
    HighQuality,
    /// <summary>Bit-close to torchaudio.functional.resample (sinc_interp_hann, lowpass_filter_width 6, rolloff 0.99).</summary>
    TorchaudioExact,
}

/// <summary>
/// API contract shared by the audio input path and the audio tokenizer. The implementation is owned by
/// the audio-input work (windowed sinc, zero latency, output length as documented per preset).
/// </summary>
public static partial class Resampler
{
    // public static float[] Resample(ReadOnlySpan<float> x, int fromRate, int toRate, ResamplerPreset preset = ResamplerPreset.HighQuality);
}
