namespace HiggsCluster.Training.Generation;

/// <summary>
/// The ids the sampler's rules turn on, taken from the model config and tokenizer: &lt;|audio_out_bos|&gt; opens audio,
/// &lt;|audio_eos|&gt; is forced when it closes, <paramref name="StopTokens"/> end generation (the serve engine's stop
/// strings are "&lt;|end_of_text|&gt;" and "&lt;|eot_id|&gt;", each a single special token). Audio codes live in
/// [0, StreamBos); StreamBos and StreamEos are the per-codebook stream markers (1024 and 1025 for Higgs Audio v2).
/// </summary>
public sealed record GenerationTokens(
    long AudioOutBos,
    long AudioEos,
    IReadOnlyList<long> StopTokens,
    int Codebooks,
    int StreamBos,
    int StreamEos,
    bool UseDelayPattern)
{
    public void Validate()
    {
        if (Codebooks <= 0) throw new ArgumentException($"generation: codebooks must be > 0, got {Codebooks}");
        if (StreamBos < 0 || StreamEos < 0 || StreamBos == StreamEos) throw new ArgumentException($"generation: stream bos {StreamBos} and eos {StreamEos} must be distinct ids ≥ 0");
        if (StopTokens is null) throw new ArgumentException("generation: stop tokens must be given (may be empty)");
    }
}
