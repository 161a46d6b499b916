namespace HiggsCluster.Training.Generation;

/// <summary>
/// How <see cref="HiggsSampler"/> picks tokens. Defaults are those of upstream's serve engine
/// (boson_multimodal/serve/serve_engine.py, HiggsAudioServeEngine.generate) where it has one; the generation itself is
/// modeling_higgs_audio.py, HiggsAudioModel._sample with HF transformers' warpers (temperature, top-k, top-p).
/// </summary>
public sealed record SamplingOptions
{
    /// <summary>
    /// Argmax instead of multinomial sampling. Upstream has no flag of its own: serve_engine.generate passes
    /// do_sample = (temperature != 0), so <see cref="Temperature"/> == 0 is greedy as well. Greedy does not switch RAS
    /// off: upstream's _sample_audio_tokens resamples repeated audio codes whether or not do_sample is set.
    /// </summary>
    public bool Greedy { get; init; }

    /// <summary>Logits are divided by this before top-k/top-p; serve_engine.generate's default is 0.7 (HF's own default, 1.0, never reaches the model through the serve engine).</summary>
    public double Temperature { get; init; } = 0.7;

    /// <summary>Keep the k best scores (ties with the k-th kept, as HF's TopKLogitsWarper); 0 = off, the serve engine's default (None).</summary>
    public int TopK { get; init; }

    /// <summary>Nucleus threshold (HF's TopPLogitsWarper); 1.0 = off. serve_engine.generate's default is 0.95.</summary>
    public double TopP { get; init; } = 0.95;

    /// <summary>Repetition-aware sampling window in audio columns; serve_engine.generate's default is 7, ≤ 0 turns RAS off as it does there.</summary>
    public int RasWindow { get; init; } = 7;

    /// <summary>A code seen this many times in the window is resampled; serve_engine.generate's default is 2.</summary>
    public int RasMaxRepeat { get; init; } = 2;

    /// <summary>Seeds our SplitMix64 stream; upstream seeds a torch.Generator, whose numbers we do not reproduce.</summary>
    public ulong Seed { get; init; }

    /// <summary>
    /// Upper bound on generation steps (HF MaxLengthCriteria over upstream's input_ids_full: one per text token, one per
    /// audio column, the closing column and its forced &lt;|audio_eos|&gt; together count as one). The serve engine
    /// takes it without a default; examples/generation.py defaults to 2048.
    /// </summary>
    public int MaxNewTokens { get; init; } = 2048;

    /// <summary>True when no multinomial draw happens outside RAS.</summary>
    public bool SamplesGreedily => Greedy || Temperature == 0;

    public void Validate()
    {
        // The bounds are those HF's warpers raise on.
        if (!(Temperature >= 0) || double.IsInfinity(Temperature)) throw new ArgumentException($"sampling: temperature must be a finite number ≥ 0, got {Temperature}");
        if (TopK < 0) throw new ArgumentException($"sampling: top_k must be ≥ 0 (0 = off), got {TopK}");
        if (!(TopP >= 0 && TopP <= 1)) throw new ArgumentException($"sampling: top_p must be in [0, 1], got {TopP}");
        if (RasWindow > 0 && RasMaxRepeat < 0) throw new ArgumentException($"sampling: ras max repeat must be ≥ 0, got {RasMaxRepeat}");
        if (MaxNewTokens <= 0) throw new ArgumentException($"sampling: max new tokens must be > 0, got {MaxNewTokens}");
    }
}
