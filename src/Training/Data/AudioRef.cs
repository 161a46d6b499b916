using HiggsCluster.Training.Audio;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Data;

/// <summary>Where one audio of a sample comes from: a file or inline bytes, with the part to use.</summary>
/// <param name="Field">The manifest field it came from, for error messages (e.g. messages[2].content[0]).</param>
public sealed record AudioRef(string? Path, byte[]? Bytes, double? Offset, double? Duration, string Field)
{
    public string Describe => Path ?? $"{Field}.raw_audio";

    /// <summary>The selected length as read from the header before decoding (null: not known without decoding).</summary>
    public double? Seconds { get; init; }

    /// <summary>Decodes the audio (mono, the file's own rate); NaN or infinite samples are refused, never trained on.</summary>
    public AudioClip Load()
    {
        var clip = Path != null ? AudioLoader.Load(Path, Offset, Duration) : AudioLoader.LoadBytes(Bytes!, Describe, Offset, Duration);
        AudioLimits.RequireFinite(clip, Describe);
        return clip;
    }
}

/// <summary>Turns audio into the discrete codes the model trains on (the Higgs audio tokenizer, usually behind a cache).</summary>
public interface IAudioCodeSource
{
    /// <summary>The rate the encoder expects its input at.</summary>
    int SampleRate { get; }

    int NumCodebooks { get; }

    /// <summary>Code frames per second of audio: what sequence lengths are estimated with before encoding.</summary>
    double FrameRate => SampleRate / 960.0;

    /// <summary>Codes I64 [NumCodebooks, T] of <paramref name="audio"/>; <paramref name="loadAtRate"/> decodes it at <see cref="SampleRate"/> when needed.</summary>
    Tensor Codes(AudioRef audio, Func<AudioClip> loadAtRate);
}
