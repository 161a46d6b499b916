using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Data;

public sealed record SampleBuilderOptions
{
    /// <summary>
    /// Audio files must resolve (symlinks followed) under this folder. Readers of a manifest set it to the manifest's
    /// own folder when none is configured (<see cref="RootFor"/>), so paths are always confined.
    /// </summary>
    public string? DataRoot { get; init; }

    /// <summary>The configured data root, else the folder of <paramref name="manifestPath"/>.</summary>
    public static string RootFor(string? dataRoot, string manifestPath) =>
        dataRoot ?? Path.GetDirectoryName(Path.GetFullPath(manifestPath))!;

    /// <summary>Longest allowed sample in model positions (text tokens + audio frames); null = no limit.</summary>
    public int? MaxTokens { get; init; }

    /// <summary>
    /// Longest audio (the part offset/duration select), read from the header before anything is decoded or encoded;
    /// null = no limit. Named after its config key, data.max_audio_seconds, which the error messages cite.
    /// </summary>
    public double? MaxAudioSeconds { get; init; } = DefaultMaxAudioSeconds;

    public const double DefaultMaxAudioSeconds = Planning.RunOptions.DefaultMaxAudioSeconds;

    /// <summary>
    /// Positions the delay pattern adds to each audio (num codebooks - 1 when the model uses it, else 0): counted in
    /// a sample's length, before encoding (from the header's duration) and after.
    /// </summary>
    public int DelayColumns { get; init; }

    /// <summary>Keep the 16 kHz waveforms of audio-in clips (needed when the collator computes Whisper features).</summary>
    public bool KeepWhisperWaveforms { get; init; } = true;

    public int WhisperSampleRate { get; init; } = 16000;
}

/// <summary>A sample ready for the collator, and what it cost.</summary>
public sealed record BuiltSample(long EntryIndex, PreparedSample Prepared, ChatMLDatasetSample Sample, double AudioSeconds, int Positions);

/// <summary>
/// Manifest entry → collator input: prepare_chatml_sample, then every audio content decoded, encoded into codes
/// (and, for audio-in, kept as a 16 kHz waveform for Whisper). An audio content may name a separate label audio
/// (<c>audio_label_url</c>): its codes become that segment's labels, else the segment's own codes are.
/// </summary>
public sealed class SampleBuilder(TextTokenizer tokenizer, IAudioCodeSource codes, SampleBuilderOptions options)
{
    private readonly AudioSegments _audio = new(codes, options);

    public SampleBuilderOptions Options { get; } = options;

    /// <summary>
    /// Builds one entry. Every failure of it, expected or not (I/O, permissions, decoding, a native tensor error), is a
    /// <see cref="SampleException"/> naming the entry and the field, so callers skip it and keep the rest.
    /// </summary>
    public BuiltSample Build(long entryIndex, ChatMLSample sample)
    {
        string field = "messages";
        try { return BuildChecked(entryIndex, sample, f => field = f); }
        catch (SampleException) { throw; }
        catch (Exception e) when (SampleException.IsPerEntry(e)) { throw SampleException.Wrap(entryIndex, field, e); }
    }

    private BuiltSample BuildChecked(long entryIndex, ChatMLSample sample, Action<string> at)
    {
        PreparedSample prepared;
        try { prepared = ChatMLPreparer.Prepare(sample, tokenizer); }
        catch (ChatMLFormatException e) { throw new SampleException(entryIndex, e.Error.Field, e.Error.Message, e); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        { throw new SampleException(entryIndex, "messages", e.Message, e); }

        var fields = AudioFields(sample);
        var codeList = new List<Tensor>();
        var labelList = new List<Tensor>();
        bool anyLabelAudio = false;
        var waves = new List<float[]>();
        double seconds = 0;
        // limits before work: every audio's header is read, and the sequence length estimated from it, before any is encoded
        var audios = new Dictionary<int, AudioRef>();
        foreach (var placement in prepared.AudioPlacements)
        {
            at(fields[placement.Index]);
            audios[placement.Index] = _audio.Resolve(entryIndex, fields[placement.Index], prepared.AudioContents[placement.Index]);
        }
        at("messages");
        if (Options.MaxTokens is { } limit)
        {
            long estimate = prepared.InputTokens.Length + audios.Values.Sum(a => (long)Math.Floor((a.Seconds ?? 0) * codes.FrameRate) + 2 + Options.DelayColumns);
            if (estimate > limit)
                throw new SampleException(entryIndex, "messages",
                    $"sample would be at least {estimate} positions long (text tokens + audio frames at {codes.FrameRate:0.##} Hz from the headers + " +
                    $"{Options.DelayColumns} delay columns per audio), over data.max_tokens ({limit}); refused before encoding");
        }
        using var scope = torch.NewDisposeScope();
        foreach (var placement in prepared.AudioPlacements)
        {
            var content = prepared.AudioContents[placement.Index];
            var field = fields[placement.Index];
            at(field);
            var audio = audios[placement.Index];
            AudioClip? clip = null;
            AudioClip Clip() => clip ??= AudioSegments.Load(entryIndex, audio);
            var c = _audio.Encode(entryIndex, audio, () => Clip().ResampleTo(codes.SampleRate));
            codeList.Add(c);
            seconds += c.shape[1] / 25.0;
            if (!placement.IsAudioOut && Options.KeepWhisperWaveforms)
                waves.Add(Clip().ResampleTo(Options.WhisperSampleRate).Samples);

            if (content.LabelUrl is not null)
            {
                anyLabelAudio = true;
                var labelRef = _audio.ResolveLabel(entryIndex, field, content);
                var lc = _audio.Encode(entryIndex, labelRef);
                if (lc.shape[1] != c.shape[1])
                    throw new SampleException(entryIndex, field + ".audio_label_url",
                        $"label audio has {lc.shape[1]} code frames but the audio has {c.shape[1]}; they must be the same length");
                labelList.Add(lc);
            }
            else labelList.Add(c);
        }

        at("messages");
        int positions = prepared.InputTokens.Length + codeList.Sum(t => (int)t.shape[1] + 2 + Options.DelayColumns);
        if (Options.MaxTokens is { } max && positions > max)
            throw new SampleException(entryIndex, "messages", $"sample is {positions} positions long (text tokens + audio frames + delay columns), over data.max_tokens ({max})");

        var starts = new long[codeList.Count];
        for (int i = 1; i < starts.Length; i++) starts[i] = starts[i - 1] + codeList[i - 1].shape[1];
        var waveStarts = new long[waves.Count];
        for (int i = 1; i < waveStarts.Length; i++) waveStarts[i] = waveStarts[i - 1] + waves[i - 1].Length;
        var built = new ChatMLDatasetSample
        {
            Name = $"entry {entryIndex}",
            InputIds = tensor(prepared.InputTokens.Select(x => (long)x).ToArray()),
            LabelIds = tensor(prepared.LabelTokens.Select(x => (long)x).ToArray()),
            AudioIdsConcat = codeList.Count > 0 ? cat(codeList, 1) : zeros(codes.NumCodebooks, 0, dtype: ScalarType.Int64),
            AudioIdsStart = tensor(starts),
            AudioWaveformsConcat = tensor(waves.SelectMany(w => w).ToArray()),
            AudioWaveformsStart = tensor(waveStarts),
            AudioSampleRate = HeldScalars.Full(waves.Count, (float)Options.WhisperSampleRate, ScalarType.Float32),
            AudioSpeakerIndices = HeldScalars.Full(codeList.Count, -1L, ScalarType.Int64),
            AudioLabelIdsConcat = anyLabelAudio ? cat(labelList, 1) : null,
        };
        foreach (var t in new[] { built.InputIds, built.LabelIds!, built.AudioIdsConcat, built.AudioIdsStart, built.AudioWaveformsConcat,
                                  built.AudioWaveformsStart, built.AudioSampleRate, built.AudioSpeakerIndices })
            t.MoveToOuterDisposeScope();
        built.AudioLabelIdsConcat?.MoveToOuterDisposeScope();
        return new BuiltSample(entryIndex, prepared, built, seconds, positions);
    }

    /// <summary>The manifest field of each audio content, in the order prepare lists them.</summary>
    public static List<string> AudioFields(ChatMLSample sample)
    {
        var fields = new List<string>();
        for (int m = 0; m < sample.Messages.Count; m++)
        {
            var content = sample.Messages[m].Content;
            for (int c = 0; c < content.Count; c++)
                if (content[c] is AudioContent) fields.Add(content.Count == 1 ? $"messages[{m}].content" : $"messages[{m}].content[{c}]");
        }
        return fields;
    }
}
