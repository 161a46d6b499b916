using HiggsCluster.Training.Audio;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Data;

/// <summary>Where one audio of a sample comes from: a file or inline bytes, with the part to use.</summary>
/// <param name="Field">The manifest field it came from, for error messages (e.g. messages[2].content[0]).</param>
public sealed record AudioRef(string? Path, byte[]? Bytes, double? Offset, double? Duration, string Field)
{
    public string Describe => Path ?? $"{Field}.raw_audio";

    /// <summary>Decodes the audio (mono, the file's own rate).</summary>
    public AudioClip Load() =>
        Path != null ? AudioLoader.Load(Path, Offset, Duration) : AudioLoader.LoadBytes(Bytes!, Describe, Offset, Duration);
}

/// <summary>Turns audio into the discrete codes the model trains on (the Higgs audio tokenizer, usually behind a cache).</summary>
public interface IAudioCodeSource
{
    /// <summary>The rate the encoder expects its input at.</summary>
    int SampleRate { get; }

    int NumCodebooks { get; }

    /// <summary>Codes I64 [NumCodebooks, T] of <paramref name="audio"/>; <paramref name="loadAtRate"/> decodes it at <see cref="SampleRate"/> when needed.</summary>
    Tensor Codes(AudioRef audio, Func<AudioClip> loadAtRate);
}
