using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Data;
using static TorchSharp.torch;

namespace HiggsCluster.Training.AudioTokenizer;

/// <summary>The Higgs audio tokenizer as the data path's code source, behind the shared code cache when one is given.</summary>
public sealed class TokenizerCodeSource(HiggsAudioTokenizer tokenizer, CodeCache? cache = null) : IAudioCodeSource
{
    public int SampleRate => tokenizer.SampleRate;
    public int NumCodebooks => tokenizer.Sizes.NQ;
    public double FrameRate => tokenizer.SampleRate / (double)tokenizer.HopLength;
    public CodeCache? Cache => cache;

    public Tensor Codes(AudioRef audio, Func<AudioClip> loadAtRate)
    {
        Tensor Encode() => tokenizer.Encode(loadAtRate().Samples);
        if (cache is null) return Encode();
        var bytes = audio.Bytes ?? File.ReadAllBytes(audio.Path!);
        return cache.GetOrEncode(bytes, audio.Offset ?? 0, audio.Duration, Encode);
    }
}
