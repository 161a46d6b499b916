using HiggsCluster.Training.Audio;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Collation;

/// <summary>
/// Port of upstream's HiggsAudioSampleCollator: pads text, builds the audio-in / audio-out code streams (stream
/// bos/eos columns, optional delay pattern), the audio labels and, when asked, Whisper features of the audio-in
/// clips split into 30 s chunks. Upstream quirks are kept on purpose (see the remarks).
/// </summary>
/// <remarks>
/// Kept upstream behaviour:
/// <list type="bullet">
/// <item>audio_out_ids_start_group_loc has one entry per sample, not per audio-out segment.</item>
/// <item>mask_audio_out_token_label writes -100 into the sample's own label tensor (in place), after the
///   no-train flags were read; collating the same sample object again then sees its audio-out as untrained.</item>
/// <item>With Whisper on, the sample is rebuilt without its reward, so rewards only reach the batch with Whisper off.</item>
/// <item>With Whisper on, an audio-in longer than chunk_size_seconds duplicates its bos/AUDIO/eos tokens per chunk but
///   not its codes, so any later audio ordinal of that sample indexes past audio_ids_start
///   (<see cref="UpstreamIndexException"/>) unless audio-in tokens are off and no audio-out follows.</item>
/// <item>The second waveform lookup uses the audio's ordinal over audio-in and audio-out tokens, the first its
///   ordinal over audio-in tokens only.</item>
/// <item>audio_label_ids_concat is only used with disable_audio_codes_transform (then verbatim, no bos/eos, no delay).</item>
/// </list>
/// </remarks>
public sealed class HiggsAudioCollator : IDisposable
{
    private readonly WhisperFeatureExtractor? _whisper;
    private readonly bool _ownsWhisper;
    private readonly Func<Tensor, float, int, Tensor>? _resample;
    private readonly long _chunkSizeSamples;

    /// <param name="options">The upstream constructor arguments.</param>
    /// <param name="whisper">Feature extractor (large-v3 when null and Whisper features are on).</param>
    /// <param name="resample">(waveform, from rate, to rate) → waveform, for audio-in clips not at the extractor's rate
    /// (upstream: librosa soxr_hq). Without it such clips are refused.</param>
    public HiggsAudioCollator(HiggsAudioCollatorOptions options, WhisperFeatureExtractor? whisper = null,
                              Func<Tensor, float, int, Tensor>? resample = null)
    {
        options.Validate();
        Options = options;
        _resample = resample;
        if (options.EncodeWhisperEmbed)
        {
            _whisper = whisper ?? new WhisperFeatureExtractor();
            _ownsWhisper = whisper is null;
            _chunkSizeSamples = (long)(options.ChunkSizeSeconds * _whisper.Settings.SamplingRate);
            if (_chunkSizeSamples < 1) throw new ArgumentException($"collator: chunk_size_seconds {options.ChunkSizeSeconds} gives no samples");
        }
    }

    public HiggsAudioCollatorOptions Options { get; }

    public HiggsBatch Collate(IReadOnlyList<ChatMLDatasetSample> batch)
    {
        if (batch.Count == 0) throw new ArgumentException("collator: empty batch");
        var o = Options;
        for (int i = 0; i < batch.Count; i++) CheckSample(batch[i], i);
        bool returnLabels = batch.Any(s => s.LabelIds is not null);

        using var scope = NewDisposeScope();
        var processed = o.EncodeWhisperEmbed
            ? batch.Select((s, i) => SplitLongAudio(s, i, returnLabels)).ToList()
            : batch.ToList();

        long maxLen = processed.Max(s => s.InputIds.shape[0]);
        long seqLen = (maxLen + o.RoundTo - 1) / o.RoundTo * o.RoundTo;

        var audioInWaves = new List<Tensor>();
        var audioInCodes = new List<Tensor>();
        var audioOutCodes = new List<Tensor>();
        var groupLoc = new List<long>();
        List<Tensor>? audioOutLabelCodes = null;
        var rewards = new List<float>();
        var noTrain = new List<bool>();

        for (int i = 0; i < processed.Count; i++)
        {
            var s = processed[i];
            var ids = s.InputIds.data<long>().ToArray();
            var (inOrd, outOrd, outPositions) = AudioOrdinals(ids);

            if (returnLabels)
            {
                var labels = s.LabelIds ?? throw new InvalidDataException(
                    $"collator: {Who(s, i)} has no label_ids while other samples of the batch have them (upstream fails with a TypeError)");
                if (labels.shape[0] != ids.Length)
                    throw new InvalidDataException($"collator: {Who(s, i)} label_ids length {labels.shape[0]} != input_ids length {ids.Length}");
                if (outPositions.Length > 0)
                {
                    var pos = tensor(outPositions);
                    var lab = labels.index_select(0, pos).data<long>().ToArray();
                    noTrain.AddRange(lab.Select(v => v < 0));
                    if (o.MaskAudioOutTokenLabel) labels.IndexFillInPlace(0, pos, -100);
                }
            }

            if (o.ReturnAudioInTokens)
                foreach (var idx in inOrd) audioInCodes.Add(LimitCodebooks(s.GetAudioCodes(idx)));
            foreach (var idx in outOrd) audioOutCodes.Add(LimitCodebooks(s.GetAudioCodes(idx)));
            groupLoc.Add(i);
            if (s.Reward is { } r) rewards.Add(r);
            if (s.AudioLabelIdsConcat is not null)
            {
                audioOutLabelCodes ??= new List<Tensor>();
                foreach (var idx in outOrd) audioOutLabelCodes.Add(LimitCodebooks(s.GetAudioCodesLabels(idx)!));
            }
            if (o.EncodeWhisperEmbed)
            {
                foreach (var idx in inOrd)
                {
                    var (wv, _) = s.GetWv(idx);
                    long total = wv.shape[0];
                    for (long c = 0; c < total; c += _chunkSizeSamples)
                        audioInWaves.Add(wv.narrow(0, c, Math.Min(_chunkSizeSamples, total - c)));
                }
            }
        }

        Tensor? audioFeatures = null, audioFeatureMask = null;
        if (audioInWaves.Count > 0)
        {
            var f = _whisper!.Extract(audioInWaves);
            audioFeatures = f.InputFeatures; audioFeatureMask = f.AttentionMask;
        }
        else if (o.EncodeWhisperEmbed)
        {
            var st = _whisper!.Settings;
            audioFeatures = zeros(0, st.FeatureSize, st.NbMaxFrames, dtype: ScalarType.Float32);
            audioFeatureMask = zeros(0, st.NbMaxFrames, dtype: ScalarType.Int32);
        }

        Tensor? audioInIds, audioInStart;
        if (audioInCodes.Count > 0)
        {
            var transformed = audioInCodes.Select(c => o.DisableAudioCodesTransform ? c : TransformInputCodes(c)).ToList();
            audioInIds = CatCodes(transformed, "audio-in");
            audioInStart = ExclusiveCumsum(transformed);
        }
        else
        {
            audioInIds = zeros(0, 0, dtype: ScalarType.Int64);
            audioInStart = zeros(0, dtype: ScalarType.Int64);
        }

        Tensor audioOutIds, audioOutStart;
        Tensor? labelAudioIds = null, groupLocT = null;
        if (audioOutCodes.Count > 0)
        {
            var outs = new List<Tensor>();
            var labs = new List<Tensor>();
            for (int idx = 0; idx < audioOutCodes.Count; idx++)
            {
                var ele = audioOutCodes[idx];
                Tensor codes;
                Tensor? lab = null;
                if (o.DisableAudioCodesTransform)
                {
                    codes = ele;
                    if (returnLabels)
                    {
                        if (audioOutLabelCodes is null)
                            throw new InvalidDataException("collator: disable_audio_codes_transform needs audio_label_ids_concat on the samples " +
                                                           "with audio-out when labels are returned (upstream fails with a TypeError)");
                        if (idx >= audioOutLabelCodes.Count)
                            throw new UpstreamIndexException(idx, audioOutLabelCodes.Count, "collator: audio-out label codes", "get_audio_codes_labels",
                                "With disable_audio_codes_transform every sample with an audio-out needs audio_label_ids_concat.");
                        lab = audioOutLabelCodes[idx];
                    }
                }
                else
                {
                    codes = TransformInputCodes(ele);
                    if (returnLabels) lab = TransformLabelCodes(ele);
                }
                outs.Add(codes);
                if (returnLabels)
                {
                    // in place like upstream: with disable_audio_codes_transform this writes into the sample's label codes
                    if (noTrain[idx]) lab!.FillInPlace(-100);
                    labs.Add(lab!);
                }
            }
            audioOutIds = CatCodes(outs, "audio-out");
            if (returnLabels) labelAudioIds = CatCodes(labs, "audio-out label");
            audioOutStart = ExclusiveCumsum(outs);
            groupLocT = tensor(groupLoc.ToArray());
        }
        else
        {
            audioOutIds = zeros(0, 0, dtype: ScalarType.Int64);
            audioOutStart = zeros(0, dtype: ScalarType.Int64);
            if (returnLabels) labelAudioIds = zeros(0, 0, dtype: ScalarType.Int64);
        }

        var reward = tensor(rewards.ToArray(), dtype: ScalarType.Float32);

        var (inputIds, attention, labelIds) = PadText(processed, seqLen, returnLabels);

        if (!o.ReturnAudioInTokens) { audioInIds = null; audioInStart = null; }
        if (o.AudioNumCodebooks is { } k)
        {
            audioInIds = audioInIds is null ? null : Rows(audioInIds, k);
            audioOutIds = Rows(audioOutIds, k);
            labelAudioIds = labelAudioIds is null ? null : Rows(labelAudioIds, k);
        }

        var result = new HiggsBatch
        {
            InputIds = inputIds.MoveToOuterDisposeScope(),
            AttentionMask = attention.MoveToOuterDisposeScope(),
            AudioFeatures = audioFeatures?.MoveToOuterDisposeScope(),
            AudioFeatureAttentionMask = audioFeatureMask?.MoveToOuterDisposeScope(),
            AudioOutIds = audioOutIds.MoveToOuterDisposeScope(),
            AudioOutIdsStart = audioOutStart.MoveToOuterDisposeScope(),
            AudioOutIdsStartGroupLoc = groupLocT?.MoveToOuterDisposeScope(),
            AudioInIds = audioInIds?.MoveToOuterDisposeScope(),
            AudioInIdsStart = audioInStart?.MoveToOuterDisposeScope(),
            LabelIds = labelIds?.MoveToOuterDisposeScope(),
            LabelAudioIds = labelAudioIds?.MoveToOuterDisposeScope(),
            Reward = reward.MoveToOuterDisposeScope(),
        };
        return result;
    }

    /// <summary>Upstream's first pass when Whisper is on: resample audio-in clips and split those over chunk_size_seconds.</summary>
    private ChatMLDatasetSample SplitLongAudio(ChatMLDatasetSample sample, int i, bool returnLabels)
    {
        int rate = _whisper!.Settings.SamplingRate;
        var ids = sample.InputIds.data<long>().ToArray();
        var inPositions = Enumerable.Range(0, ids.Length).Where(p => ids[p] == Options.AudioInTokenId).ToList();
        var modifiedIds = sample.InputIds;
        var modifiedLabels = returnLabels ? sample.LabelIds : null;
        var waves = new List<Tensor>();
        var starts = new List<long>();
        var rates = new List<float>();
        long offset = 0, cursor = 0;
        for (int idx = 0; idx < inPositions.Count; idx++)
        {
            var (wv, sr) = sample.GetWv(idx);
            if (sr != rate)
            {
                if (_resample is null)
                    throw new NotSupportedException($"collator: {Who(sample, i)} audio-in {idx} is at {sr} Hz but Whisper needs {rate} Hz and no resampler was given");
                wv = _resample(wv, sr, rate);
            }
            long tokenPos = inPositions[idx] + offset;
            long numChunks = (wv.shape[0] + _chunkSizeSamples - 1) / _chunkSizeSamples;
            if (numChunks > 1)
            {
                modifiedIds = Duplicate(modifiedIds, tokenPos, numChunks);
                if (modifiedLabels is not null) modifiedLabels = Duplicate(modifiedLabels, tokenPos, numChunks);
            }
            else numChunks = 1;
            for (long c = 0; c < numChunks; c++)
            {
                long cs = c * _chunkSizeSamples, ce = Math.Min((c + 1) * _chunkSizeSamples, wv.shape[0]);
                var chunk = ChatMLDatasetSample.PySlice(wv, 0, cs, ce);
                waves.Add(chunk);
                starts.Add(cursor);
                cursor += chunk.shape[0];
                rates.Add(rate);
            }
            offset += (numChunks - 1) * 3;
        }
        return new ChatMLDatasetSample
        {
            Name = sample.Name,
            InputIds = modifiedIds,
            LabelIds = returnLabels ? modifiedLabels : sample.LabelIds,
            AudioIdsConcat = sample.AudioIdsConcat,
            AudioIdsStart = sample.AudioIdsStart,
            AudioWaveformsConcat = waves.Count > 0 ? cat(waves.Select(w => w.to_type(ScalarType.Float32)).ToList(), 0) : sample.AudioWaveformsConcat,
            AudioWaveformsStart = starts.Count > 0 ? tensor(starts.ToArray()) : sample.AudioWaveformsStart,
            AudioSampleRate = rates.Count > 0 ? tensor(rates.ToArray()) : sample.AudioSampleRate,
            AudioSpeakerIndices = zeros(0, dtype: ScalarType.Int64),
            AudioLabelIdsConcat = sample.AudioLabelIdsConcat,
            Reward = null, // upstream rebuilds the sample without its reward
        };
    }

    /// <summary>Repeats x[pos-1 : pos+2] (bos, AUDIO, eos) n times in place of itself, with Python slice semantics.</summary>
    private static Tensor Duplicate(Tensor x, long pos, long n)
    {
        var group = ChatMLDatasetSample.PySlice(x, 0, pos - 1, pos + 2);
        var before = ChatMLDatasetSample.PySlice(x, 0, 0, pos - 1);
        var after = ChatMLDatasetSample.PySlice(x, 0, pos + 2, x.shape[0]);
        return cat(new[] { before, group.repeat(n), after }, 0);
    }

    /// <summary>
    /// Ordinal of each audio token among the positions holding exactly one of the two audio token ids (upstream's
    /// cumsum over in XOR out; a token that is both gets 1).
    /// </summary>
    private (long[] In, long[] Out, long[] OutPositions) AudioOrdinals(long[] ids)
    {
        var inOrd = new List<long>(); var outOrd = new List<long>(); var outPos = new List<long>();
        long next = 0;
        for (int p = 0; p < ids.Length; p++)
        {
            bool isIn = ids[p] == Options.AudioInTokenId, isOut = ids[p] == Options.AudioOutTokenId;
            long ord = 1;
            if (isIn ^ isOut) ord = next++;
            if (isIn) inOrd.Add(ord);
            if (isOut) { outOrd.Add(ord); outPos.Add(p); }
        }
        return (inOrd.ToArray(), outOrd.ToArray(), outPos.ToArray());
    }

    private Tensor LimitCodebooks(Tensor codes) =>
        Options.AudioNumCodebooks is { } k ? Rows(codes, k) : codes;

    private static Tensor Rows(Tensor x, long k) => x.narrow(0, 0, Math.Min(k, x.shape[0]));

    /// <summary>[first | codes | last] columns, then the delay pattern (delayBos fill, delayPad pad) when asked.</summary>
    private static Tensor TransformCodes(Tensor codes, long first, long last, bool delay, long delayBos, long delayPad)
    {
        long k = codes.shape[0];
        using var firstS = first.ToScalar();
        using var lastS = last.ToScalar();
        var framed = cat(new[]
        {
            full(k, 1, firstS, dtype: ScalarType.Int64),
            codes.to_type(ScalarType.Int64),
            full(k, 1, lastS, dtype: ScalarType.Int64),
        }, 1);
        return delay ? DelayPattern.Build(framed, delayBos, delayPad) : framed;
    }

    private Tensor TransformInputCodes(Tensor codes) =>
        TransformCodes(codes, Options.AudioStreamBosId, Options.AudioStreamEosId, Options.UseDelayPattern, Options.AudioStreamBosId, Options.AudioStreamEosId);

    /// <summary>Labels of an audio-out segment: [-100 | codes | eos], delayed with -100 in both fill regions.</summary>
    private Tensor TransformLabelCodes(Tensor codes) =>
        TransformCodes(codes, -100, Options.AudioStreamEosId, Options.UseDelayPattern, -100, -100);

    private static Tensor CatCodes(List<Tensor> parts, string what)
    {
        var rows = parts.Select(p => p.shape[0]).Distinct().ToList();
        if (rows.Count > 1)
            throw new InvalidDataException($"collator: {what} segments have different numbers of codebooks ({string.Join(", ", rows)}); set audio_num_codebooks");
        return cat(parts, 1).to_type(ScalarType.Int64);
    }

    private static Tensor ExclusiveCumsum(List<Tensor> parts)
    {
        var starts = new long[parts.Count];
        for (int i = 1; i < parts.Count; i++) starts[i] = starts[i - 1] + parts[i - 1].shape[1];
        return tensor(starts);
    }

    private (Tensor Ids, Tensor Attention, Tensor? Labels) PadText(List<ChatMLDatasetSample> batch, long seqLen, bool returnLabels)
    {
        int b = batch.Count;
        using var pad = Options.PadTokenId.ToScalar();
        using var ignore = (-100L).ToScalar();
        var ids = full(b, seqLen, pad, dtype: ScalarType.Int64);
        var attention = zeros(b, seqLen, dtype: ScalarType.Int64);
        var labels = returnLabels ? full(b, seqLen, ignore, dtype: ScalarType.Int64) : null;
        for (int i = 0; i < b; i++)
        {
            var s = batch[i];
            long n = s.InputIds.shape[0];
            long at = Options.PadLeft ? seqLen - n : 0;
            ids[i].narrow(0, at, n).copy_(s.InputIds);
            attention[i].narrow(0, at, n).FillInPlace(1);
            if (labels is not null)
            {
                var l = s.LabelIds!;
                if (l.shape[0] != n)
                    throw new InvalidDataException($"collator: {Who(s, i)} label_ids length {l.shape[0]} != input_ids length {n}");
                labels[i].narrow(0, at, n).copy_(l);
            }
        }
        return (ids, attention, labels);
    }

    private static string Who(ChatMLDatasetSample s, int i) => s.Name ?? $"sample {i}";

    private static void CheckSample(ChatMLDatasetSample s, int i)
    {
        void Need(bool ok, string what)
        {
            if (!ok) throw new InvalidDataException($"collator: {Who(s, i)}: {what}");
        }
        Need(s.InputIds.dim() == 1 && s.InputIds.dtype == ScalarType.Int64, $"input_ids must be 1-D int64, got {s.InputIds.dtype} [{string.Join(",", s.InputIds.shape)}]");
        Need(s.LabelIds is null || (s.LabelIds.dim() == 1 && s.LabelIds.dtype == ScalarType.Int64), "label_ids must be 1-D int64");
        Need(s.AudioIdsConcat.dim() == 2, $"audio_ids_concat must be [codebooks, T], got [{string.Join(",", s.AudioIdsConcat.shape)}]");
        Need(s.AudioIdsStart.dim() == 1, "audio_ids_start must be 1-D");
        Need(s.AudioWaveformsConcat.dim() == 1, "audio_waveforms_concat must be 1-D");
        Need(s.AudioWaveformsStart.dim() == 1, "audio_waveforms_start must be 1-D");
        Need(s.AudioLabelIdsConcat is null || s.AudioLabelIdsConcat.dim() == 2, "audio_label_ids_concat must be [codebooks, T]");
    }

    public void Dispose()
    {
        if (_ownsWhisper) _whisper?.Dispose();
    }
}
