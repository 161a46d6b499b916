using System.Text.Json.Nodes;
using HiggsCluster.Training.Audio;
using HiggsCluster.Training.Collation;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Goldens;

/// <summary>
/// Golden area <c>collator</c>: rebuilds the case's samples from <c>s&lt;i&gt;_*</c> tensors, runs the collator with the
/// run's constructor arguments and returns every batch field; fields listed in <c>none_fields</c> must be null.
/// </summary>
public sealed class CollatorGoldenArea : IGoldenArea
{
    public string Name => "collator";

    public GoldenOutputs Compute(GoldenRun run)
    {
        var inputs = run.LoadInputs();
        var samples = LoadSamples(run.CaseParameters, inputs, run.Label);
        var options = OptionsFrom(run.RunParameters, run.Label);
        using var whisper = options.EncodeWhisperEmbed
            ? new WhisperFeatureExtractor(WhisperGoldenArea.SettingsFrom(run.CaseParameters))
            : null;
        using var collator = new HiggsAudioCollator(options, whisper);
        var batch = collator.Collate(samples);

        var outputs = new GoldenOutputs();
        foreach (var (name, t) in batch.ToNamedTensors()) outputs.Tensors[name] = t;
        var none = (run.Run["none_fields"] as JsonArray)?.Select(n => n!.GetValue<string>()).ToHashSet() ?? new HashSet<string>();
        foreach (var name in none)
            if (outputs.Tensors.ContainsKey(name)) outputs.Failures.Add($"{name}: upstream returns None but the port returned a tensor");
        if (run.Run["fields"] is JsonObject fields)
        {
            foreach (var (name, spec) in fields)
            {
                bool isNone = spec is null;
                if (isNone && !none.Contains(name) && outputs.Tensors.ContainsKey(name))
                    outputs.Failures.Add($"{name}: upstream returns None but the port returned a tensor");
                if (!isNone && spec is JsonArray arr && arr.Count == 2 && outputs.Tensors.TryGetValue(name, out var t))
                {
                    var want = arr[1]!.GetValue<string>();
                    var got = DtypeName(t.dtype);
                    if (got != want) outputs.Failures.Add($"{name}: dtype {got}, upstream {want}");
                }
                if (!isNone && !outputs.Tensors.ContainsKey(name)) outputs.Failures.Add($"{name}: upstream returns a tensor but the port returned None");
            }
        }
        return outputs;
    }

    private static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.Int64 => "int64",
        ScalarType.Int32 => "int32",
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        ScalarType.Bool => "bool",
        _ => t.ToString(),
    };

    /// <summary>The collator constructor arguments of a run (names as upstream's keyword arguments).</summary>
    public static HiggsAudioCollatorOptions OptionsFrom(JsonObject p, string label)
    {
        long Req(string k) => p[k]?.GetValue<long>() ?? throw new InvalidDataException($"{label}: run parameter '{k}' missing");
        bool Bool(string k, bool d) => p[k]?.GetValue<bool>() ?? d;
        var known = new HashSet<string>
        {
            "audio_in_token_id", "audio_out_token_id", "pad_token_id", "audio_stream_bos_id", "audio_stream_eos_id", "round_to",
            "pad_left", "encode_whisper_embed", "return_audio_in_tokens", "audio_num_codebooks", "use_delay_pattern",
            "disable_audio_codes_transform", "chunk_size_seconds", "add_new_bos_eos_for_long_chunk", "mask_audio_out_token_label",
        };
        foreach (var (k, _) in p)
            if (!known.Contains(k)) throw new InvalidDataException($"{label}: unknown collator parameter '{k}'");
        return new HiggsAudioCollatorOptions
        {
            AudioInTokenId = Req("audio_in_token_id"),
            AudioOutTokenId = Req("audio_out_token_id"),
            PadTokenId = Req("pad_token_id"),
            AudioStreamBosId = Req("audio_stream_bos_id"),
            AudioStreamEosId = Req("audio_stream_eos_id"),
            RoundTo = p["round_to"]?.GetValue<int>() ?? 8,
            PadLeft = Bool("pad_left", false),
            EncodeWhisperEmbed = Bool("encode_whisper_embed", true),
            ReturnAudioInTokens = Bool("return_audio_in_tokens", true),
            AudioNumCodebooks = p["audio_num_codebooks"]?.GetValue<int>(),
            UseDelayPattern = Bool("use_delay_pattern", false),
            DisableAudioCodesTransform = Bool("disable_audio_codes_transform", false),
            ChunkSizeSeconds = p["chunk_size_seconds"]?.GetValue<double>() ?? 30,
            AddNewBosEosForLongChunk = Bool("add_new_bos_eos_for_long_chunk", true),
            MaskAudioOutTokenLabel = Bool("mask_audio_out_token_label", true),
        };
    }

    /// <summary>Samples from <c>s&lt;i&gt;_*</c> tensors; <c>sample_rewards</c> gives the rewards where the file has none.</summary>
    public static List<ChatMLDatasetSample> LoadSamples(JsonObject caseParameters, Dictionary<string, Tensor> t, string label)
    {
        int n = caseParameters["num_samples"]?.GetValue<int>() ?? throw new InvalidDataException($"{label}: parameters.num_samples missing");
        var rewards = caseParameters["sample_rewards"] as JsonArray;
        bool? Flag(string list, int i) => caseParameters[list] is JsonArray a && i < a.Count ? a[i]?.GetValue<bool>() : null;
        var samples = new List<ChatMLDatasetSample>();
        for (int i = 0; i < n; i++)
        {
            Tensor Need(string f) => t.TryGetValue($"s{i}_{f}", out var v) ? v : throw new InvalidDataException($"{label}: inputs have no s{i}_{f}");
            Tensor? Opt(string f) => t.TryGetValue($"s{i}_{f}", out var v) ? v : null;
            foreach (var (list, field) in new[] { ("labels_present", "label_ids"), ("audio_label_ids_present", "audio_label_ids_concat") })
            {
                if (Flag(list, i) is { } present && present != (Opt(field) is not null))
                    throw new InvalidDataException($"{label}: parameters.{list}[{i}] is {present} but s{i}_{field} is {(present ? "absent" : "present")}");
            }
            float? reward = Opt("reward") is { } r ? r.to_type(ScalarType.Float32).item<float>() : null;
            if (reward is null && rewards is not null && i < rewards.Count && rewards[i] is JsonValue rv) reward = (float)rv.GetValue<double>();
            samples.Add(new ChatMLDatasetSample
            {
                Name = $"sample {i}",
                InputIds = Need("input_ids"),
                LabelIds = Opt("label_ids"),
                AudioIdsConcat = Need("audio_ids_concat"),
                AudioIdsStart = Need("audio_ids_start"),
                AudioWaveformsConcat = Need("audio_waveforms_concat"),
                AudioWaveformsStart = Need("audio_waveforms_start"),
                AudioSampleRate = Need("audio_sample_rate"),
                AudioSpeakerIndices = Need("audio_speaker_indices"),
                AudioLabelIdsConcat = Opt("audio_label_ids_concat"),
                Reward = reward,
            });
        }
        return samples;
    }
}
