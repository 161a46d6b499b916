using static TorchSharp.torch;

namespace HiggsCluster.Training.Collation;

/// <summary>
/// One tokenised ChatML sample as upstream's ChatMLDatasetSample: text ids and labels, the codes of all its audios
/// (audio-in and audio-out, in order of appearance) concatenated along time, and the audio-in waveforms.
/// </summary>
public sealed class ChatMLDatasetSample
{
    public required Tensor InputIds { get; init; }                 // I64 [L]
    /// <summary>I64 [L]; null = no labels. Settable because mask_audio_out_token_label edits it in place upstream.</summary>
    public Tensor? LabelIds { get; set; }
    public required Tensor AudioIdsConcat { get; init; }           // I64 [C, T]
    public required Tensor AudioIdsStart { get; init; }            // I64 [A]
    public required Tensor AudioWaveformsConcat { get; init; }     // F32 [W]
    public required Tensor AudioWaveformsStart { get; init; }      // I64 [K]
    public required Tensor AudioSampleRate { get; init; }          // F32 [K]
    public required Tensor AudioSpeakerIndices { get; init; }      // I64 [A]
    public Tensor? AudioLabelIdsConcat { get; init; }              // I64 [C, T]
    public float? Reward { get; init; }

    /// <summary>Optional name used in error messages (e.g. "sample 3" or a manifest id).</summary>
    public string? Name { get; init; }

    private string Who => Name ?? "sample";

    public long NumAudios() => Math.Max(AudioWaveformsStart.shape[0], AudioIdsStart.shape[0]);

    /// <summary>Codes [C, T_i] of audio <paramref name="idx"/> (global ordinal over audio-in and audio-out).</summary>
    public Tensor GetAudioCodes(long idx) => CodeSlice(AudioIdsConcat, idx, "audio_ids_start");

    /// <summary>Label codes of audio <paramref name="idx"/>, or null when the sample has no audio_label_ids_concat.</summary>
    public Tensor? GetAudioCodesLabels(long idx) =>
        AudioLabelIdsConcat is null ? null : CodeSlice(AudioLabelIdsConcat, idx, "audio_ids_start");

    /// <summary>Waveform and sample rate of waveform <paramref name="idx"/>.</summary>
    public (Tensor Waveform, float SampleRate) GetWv(long idx)
    {
        long n = AudioWaveformsStart.shape[0];
        CheckIndex(idx, n, "audio_waveforms_start");
        if (idx >= AudioSampleRate.shape[0])
            throw new UpstreamIndexException(idx, AudioSampleRate.shape[0], $"{Who}: audio_sample_rate", "get_wv");
        long start = AudioWaveformsStart[idx].item<long>();
        long end = idx < n - 1 ? AudioWaveformsStart[idx + 1].item<long>() : AudioWaveformsConcat.shape[^1];
        float sr = AudioSampleRate[idx].to_type(ScalarType.Float32).item<float>();
        return (PySlice(AudioWaveformsConcat, 0, start, end), sr);
    }

    /// <summary>Whisper tower output rate: 3000 mel frames per 30 s, pooled by 4.</summary>
    public const int WhisperEmbedsPerSecond = 25;

    /// <summary>
    /// Upstream's cal_num_tokens: the merged sequence length estimate (text tokens without the audio placeholders,
    /// plus ceil(25 * seconds) per waveform when Whisper is on, plus the code lengths of the audio kinds that are
    /// embedded). Rate division is done in float32 like upstream's tensor arithmetic.
    /// </summary>
    public long CalNumTokens(bool encodeWhisperEmbed = true, bool encodeAudioInTokens = false, bool encodeAudioOutTokens = true,
                             long audioInTokenId = 128015, long audioOutTokenId = 128016)
    {
        double n = InputIds.shape[0] - AudioIdsStart.shape[0];
        long wavCount = AudioWaveformsStart.shape[0];
        if (encodeWhisperEmbed && AudioWaveformsConcat.shape[0] > 0)
        {
            var starts = AudioWaveformsStart.data<long>().ToArray();
            var rates = AudioSampleRate.to_type(ScalarType.Float32).data<float>().ToArray();
            for (int i = 0; i + 1 < wavCount; i++)
                n += MathF.Ceiling(WhisperEmbedsPerSecond * (starts[i + 1] - starts[i]) / rates[i]);
            if (wavCount == 0)
                throw new UpstreamIndexException(-1, 0, $"{Who}: audio_waveforms_start", "cal_num_tokens",
                    "audio_waveforms_concat holds samples but audio_waveforms_start is empty.");
            n += MathF.Ceiling(WhisperEmbedsPerSecond * (AudioWaveformsConcat.shape[0] - starts[^1]) / rates[^1]);
        }
        if (AudioIdsConcat.shape[1] > 0)
        {
            var ids = InputIds.data<long>().ToArray().Where(v => v == audioInTokenId || v == audioOutTokenId).ToArray();
            var starts = AudioIdsStart.data<long>().ToArray();
            if (ids.Length != starts.Length)
                throw new InvalidDataException($"{Who}: {ids.Length} audio tokens in input_ids but {starts.Length} entries in audio_ids_start " +
                                               "(upstream cal_num_tokens fails with an IndexError)");
            for (int i = 0; i < starts.Length; i++)
            {
                long len = (i + 1 < starts.Length ? starts[i + 1] : AudioIdsConcat.shape[1]) - starts[i];
                if ((encodeAudioInTokens && ids[i] == audioInTokenId) || (encodeAudioOutTokens && ids[i] == audioOutTokenId)) n += len;
            }
        }
        return (long)n;
    }

    private Tensor CodeSlice(Tensor concat, long idx, string startField)
    {
        long n = AudioIdsStart.shape[0];
        CheckIndex(idx, n, startField);
        long start = AudioIdsStart[idx].item<long>();
        // upstream ends the last audio at audio_ids_concat's width, for the label tensor too
        long end = idx < n - 1 ? AudioIdsStart[idx + 1].item<long>() : AudioIdsConcat.shape[^1];
        return PySlice(concat, concat.dim() - 1, start, end);
    }

    private void CheckIndex(long idx, long size, string field)
    {
        if (idx < -size || idx >= size)
            throw new UpstreamIndexException(idx, size, $"{Who}: {field}", field == "audio_waveforms_start" ? "get_wv" : "get_audio_codes");
    }

    /// <summary>Python slice semantics x[start:end] on one dim (negative bounds count from the end, out of range clamps).</summary>
    internal static Tensor PySlice(Tensor x, long dim, long start, long end)
    {
        long len = x.shape[dim];
        static long Norm(long v, long len) => v < 0 ? Math.Max(0, v + len) : Math.Min(v, len);
        long s = Norm(start, len), e = Norm(end, len);
        return x.narrow(dim, s, Math.Max(0, e - s));
    }
}

/// <summary>
/// Raised where upstream raises IndexError ("index i is out of bounds for dimension 0 with size n"), with the likely
/// cause spelled out (see <see cref="ChunkingHint"/> and <see cref="WaveformHint"/>).
/// </summary>
public sealed class UpstreamIndexException : ArgumentOutOfRangeException
{
    /// <summary>Why audio codes are indexed out of range after the collator's >30 s chunking.</summary>
    public const string ChunkingHint =
        "When Whisper features are on, upstream's collator splits an audio-in longer than chunk_size_seconds into chunks and " +
        "repeats <|audio_bos|><|AUDIO|><|audio_eos|> once per chunk, but it does not duplicate the audio codes " +
        "(audio_ids_start), so every audio ordinal after the first chunk points one or more audios further and runs past " +
        "the codes; use clips <= 30 s, turn off return_audio_in_tokens (and have no audio-out after the long clip), or turn " +
        "off encode_whisper_embed.";

    /// <summary>Why a waveform is indexed out of range.</summary>
    public const string WaveformHint =
        "Whisper features need a waveform for every <|AUDIO|> token; upstream looks waveforms up by the audio-in ordinal " +
        "first and by the ordinal over all audio tokens (audio-in and audio-out) after chunking, so an audio-out before an " +
        "audio-in also shifts the lookup.";

    public UpstreamIndexException(long index, long size, string where, string method, string? hint = null)
        : base(null, $"{where}: index {index} is out of bounds for dimension 0 with size {size} (upstream raises IndexError in " +
                     $"ChatMLDatasetSample.{method}). " + (hint ?? (method == "get_wv" ? WaveformHint : ChunkingHint)))
    {
        Index = index;
        Size = size;
    }

    public long Index { get; }
    public long Size { get; }
}
