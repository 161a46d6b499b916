using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Generation;

/// <summary>
/// What generation needs besides the model: the text tokenizer, the audio tokenizer (reference clips in, WAV out), and
/// the training data path's sample builder and collator, so a prompt is laid out exactly as the model was trained.
/// A training run makes one from its own data path (samples at validation); `higgs generate` from folders.
/// </summary>
public sealed class SpeechContext(HiggsAudioModel model, TextTokenizer text, HiggsAudioTokenizer audio, SampleBuilder builder, HiggsAudioCollator collator)
{
    // the serve engine's collator (serve_engine.py, HiggsAudioServeEngine.__init__): no rounding of the length, so the
    // prompt ends with its last token, and no audio-in codes; everything else as the run's collator
    private readonly HiggsAudioCollator _prompts = new(collator.Options with { RoundTo = 1, ReturnAudioInTokens = false });

    /// <summary>A context with the model preset's collator (the layout the model config implies), as `higgs generate` uses.</summary>
    public static SpeechContext For(HiggsAudioModel model, TextTokenizer tokens, HiggsAudioTokenizer audio)
    {
        var cfg = model.Config;
        var settings = new CollatorModelSettings(cfg.EncodeWhisperEmbed && cfg.BuildsAudioTower, cfg.EncodeAudioInTokens, cfg.UseDelayPattern,
            cfg.AudioNumCodebooks, cfg.AudioStreamBosId, cfg.AudioStreamEosId, cfg.AudioInTokenIdx, cfg.AudioOutTokenIdx, cfg.PadTokenId);
        var collatorOptions = CollatorPresets.Create(CollatorPresets.Model, settings);
        var builder = new SampleBuilder(tokens, new TokenizerCodeSource(audio), new SampleBuilderOptions { KeepWhisperWaveforms = collatorOptions.EncodeWhisperEmbed });
        return new SpeechContext(model, tokens, audio, builder, new HiggsAudioCollator(collatorOptions));
    }

    public HiggsAudioModel Model => model;
    public HiggsAudioTokenizer AudioTokenizer => audio;
    public int SampleRate => audio.SampleRate;

    public GenerationTokens Tokens
    {
        get
        {
            var s = HiggsSpecialTokens.From(text);
            var c = model.Config;
            return new GenerationTokens(s.AudioOutBos, s.AudioEos, new long[] { s.EndOfText, s.EotId }, c.AudioNumCodebooks,
                c.AudioStreamBosId, c.AudioStreamEosId, c.UseDelayPattern);
        }
    }

    public GenerationResult Generate(GenerationRequest r, SamplingOptions options)
    {
        r.Validate();
        try { return Generate(GenerationPrompt.Messages(r), options); }
        catch (SampleException e) { throw new GenerationException(e.Field.Contains("audio", StringComparison.Ordinal) ? "--reference-audio" : "--text", e.Reason); }
    }

    /// <summary>Generates the assistant's next turn after <paramref name="conversation"/> (its messages, built like a training sample).</summary>
    public GenerationResult Generate(ChatMLSample conversation, SamplingOptions options)
    {
        using var scope = NewDisposeScope();
        var prompt = GenerationPrompt.Collate(conversation, builder, _prompts, text);
        return SpeechGenerator.Run(model, prompt, Tokens, options);
    }

    /// <summary>The waveform of <paramref name="codes"/> (K × T) at the audio tokenizer's rate (24 kHz); codes are clipped to the codebook as upstream does.</summary>
    public float[] Decode(long[,] codes)
    {
        int k = codes.GetLength(0), t = codes.GetLength(1);
        if (t == 0) return Array.Empty<float>();
        int max = model.Config.AudioCodebookSize - 1;
        var flat = new long[k * t];
        for (int q = 0; q < k; q++)
            for (int j = 0; j < t; j++) flat[q * t + j] = Math.Clamp(codes[q, j], 0, max);
        using var scope = NewDisposeScope();
        using var wave = audio.Decode(tensor(flat, new long[] { k, t }));
        return wave.to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
    }
}
