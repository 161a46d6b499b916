namespace HiggsCluster.Training.Collation;

/// <summary>The constructor arguments of upstream's HiggsAudioSampleCollator (defaults = upstream defaults).</summary>
public sealed record HiggsAudioCollatorOptions
{
    public required long AudioInTokenId { get; init; }
    public required long AudioOutTokenId { get; init; }
    public required long PadTokenId { get; init; }
    public required long AudioStreamBosId { get; init; }
    public required long AudioStreamEosId { get; init; }
    public int RoundTo { get; init; } = 8;
    public bool PadLeft { get; init; }
    public bool EncodeWhisperEmbed { get; init; } = true;
    public bool ReturnAudioInTokens { get; init; } = true;
    /// <summary>null = keep every codebook of the sample (upstream None).</summary>
    public int? AudioNumCodebooks { get; init; }
    public bool UseDelayPattern { get; init; }
    public bool DisableAudioCodesTransform { get; init; }
    public double ChunkSizeSeconds { get; init; } = 30;
    /// <summary>Stored but unused upstream (the duplicated chunk tokens always repeat bos/AUDIO/eos).</summary>
    public bool AddNewBosEosForLongChunk { get; init; } = true;
    public bool MaskAudioOutTokenLabel { get; init; } = true;

    public void Validate()
    {
        if (RoundTo < 1) throw new ArgumentException($"collator: round_to must be >= 1, got {RoundTo}");
        if (AudioNumCodebooks is < 1) throw new ArgumentException($"collator: audio_num_codebooks must be >= 1, got {AudioNumCodebooks}");
        if (EncodeWhisperEmbed && !(ChunkSizeSeconds > 0))
            throw new ArgumentException($"collator: chunk_size_seconds must be > 0, got {ChunkSizeSeconds}");
    }
}

/// <summary>
/// The collator-relevant values of a HiggsAudioConfig (read elsewhere): which inputs the model consumes and the
/// token ids it was trained with.
/// </summary>
public sealed record CollatorModelSettings(
    bool EncodeWhisperEmbed,
    bool EncodeAudioInTokens,
    bool UseDelayPattern,
    int AudioNumCodebooks,
    long AudioStreamBosId,
    long AudioStreamEosId,
    long AudioInTokenId,
    long AudioOutTokenId,
    long PadTokenId);

/// <summary>Named collator presets.</summary>
public static class CollatorPresets
{
    public const string Model = "model";
    public const string Seed = "seed";

    public static IReadOnlyList<string> Names { get; } = new[] { Model, Seed };

    /// <summary>
    /// <c>model</c> (default): whisper, audio-in tokens, delay pattern and codebooks as the model config says; the other
    /// arguments keep upstream's constructor defaults.
    /// <c>seed</c>: the seed trainer's collator (whisper on, audio-in tokens on, no delay pattern, 8 codebooks,
    /// round_to 8, mask_audio_out_token_label off), with the config's token ids. Every setting that contradicts the
    /// model config is reported through <paramref name="warn"/>.
    /// </summary>
    public static HiggsAudioCollatorOptions Create(string preset, CollatorModelSettings model, Action<string>? warn = null)
    {
        var fromModel = new HiggsAudioCollatorOptions
        {
            AudioInTokenId = model.AudioInTokenId,
            AudioOutTokenId = model.AudioOutTokenId,
            PadTokenId = model.PadTokenId,
            AudioStreamBosId = model.AudioStreamBosId,
            AudioStreamEosId = model.AudioStreamEosId,
            EncodeWhisperEmbed = model.EncodeWhisperEmbed,
            ReturnAudioInTokens = model.EncodeAudioInTokens,
            UseDelayPattern = model.UseDelayPattern,
            AudioNumCodebooks = model.AudioNumCodebooks,
        };
        HiggsAudioCollatorOptions options = preset switch
        {
            Model => fromModel,
            Seed => fromModel with
            {
                EncodeWhisperEmbed = true,
                ReturnAudioInTokens = true,
                UseDelayPattern = false,
                AudioNumCodebooks = 8,
                RoundTo = 8,
                MaskAudioOutTokenLabel = false,
            },
            _ => throw new ArgumentException($"unknown collator preset '{preset}' (known: {string.Join(", ", Names)})"),
        };
        foreach (var w in Contradictions(options, model)) warn?.Invoke($"collator preset '{preset}': {w}");
        options.Validate();
        return options;
    }

    /// <summary>Where the collator options disagree with what the model config expects.</summary>
    public static IEnumerable<string> Contradictions(HiggsAudioCollatorOptions o, CollatorModelSettings m)
    {
        if (o.UseDelayPattern != m.UseDelayPattern)
            yield return $"use_delay_pattern={o.UseDelayPattern} but the model config has use_delay_pattern={m.UseDelayPattern}" +
                         (m.UseDelayPattern ? " (the model was trained on delayed codes and its sampler expects them)" : "");
        if (o.EncodeWhisperEmbed != m.EncodeWhisperEmbed)
            yield return $"encode_whisper_embed={o.EncodeWhisperEmbed} but the model config has encode_whisper_embed={m.EncodeWhisperEmbed}" +
                         (m.EncodeWhisperEmbed ? "" : " (Whisper features are computed and then ignored by a model without audio tower)");
        if (o.ReturnAudioInTokens != m.EncodeAudioInTokens)
            yield return $"return_audio_in_tokens={o.ReturnAudioInTokens} but the model config has encode_audio_in_tokens={m.EncodeAudioInTokens}";
        if (o.AudioNumCodebooks is { } k && k != m.AudioNumCodebooks)
            yield return $"audio_num_codebooks={k} but the model config has audio_num_codebooks={m.AudioNumCodebooks}";
        if (o.AudioStreamBosId != m.AudioStreamBosId || o.AudioStreamEosId != m.AudioStreamEosId)
            yield return $"audio stream bos/eos {o.AudioStreamBosId}/{o.AudioStreamEosId} but the model config has {m.AudioStreamBosId}/{m.AudioStreamEosId}";
    }
}
