using static TorchSharp.torch;

namespace HiggsCluster.Training.Collation;

/// <summary>
/// A collated batch: the fields of upstream's HiggsAudioBatchInput (None = null), plus <see cref="Length"/>
/// as in the seed trainer's extended batch. Field names in <see cref="ToNamedTensors"/> are the upstream names,
/// which are also the tensor names of the collator goldens and of the model goldens' inputs.
/// </summary>
public sealed class HiggsBatch : IDisposable
{
    public required Tensor InputIds { get; init; }                 // I64 [B, L]
    public required Tensor AttentionMask { get; init; }            // I64 [B, L]
    public Tensor? AudioFeatures { get; init; }                    // F32 [n_chunks, 128, 3000]
    public Tensor? AudioFeatureAttentionMask { get; init; }        // I32 [n_chunks, 3000]
    public Tensor? AudioOutIds { get; init; }                      // I64 [C, T_out]
    public Tensor? AudioOutIdsStart { get; init; }                 // I64 [n_out]
    public Tensor? AudioOutIdsStartGroupLoc { get; init; }         // I64 [B]
    public Tensor? AudioInIds { get; init; }                       // I64 [C, T_in]
    public Tensor? AudioInIdsStart { get; init; }                  // I64 [n_in]
    public Tensor? LabelIds { get; init; }                         // I64 [B, L]
    public Tensor? LabelAudioIds { get; init; }                    // I64 [C, T_out]
    public Tensor? Reward { get; init; }                           // F32 [n_rewarded]

    /// <summary>Number of samples in the batch.</summary>
    public long Length => InputIds.shape[0];

    public static readonly string[] FieldNames =
    {
        "input_ids", "attention_mask", "audio_features", "audio_feature_attention_mask", "audio_out_ids",
        "audio_out_ids_start", "audio_out_ids_start_group_loc", "audio_in_ids", "audio_in_ids_start",
        "label_ids", "label_audio_ids", "reward",
    };

    public Dictionary<string, Tensor> ToNamedTensors()
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        void Add(string n, Tensor? t) { if (t is not null) d[n] = t; }
        Add("input_ids", InputIds); Add("attention_mask", AttentionMask);
        Add("audio_features", AudioFeatures); Add("audio_feature_attention_mask", AudioFeatureAttentionMask);
        Add("audio_out_ids", AudioOutIds); Add("audio_out_ids_start", AudioOutIdsStart);
        Add("audio_out_ids_start_group_loc", AudioOutIdsStartGroupLoc);
        Add("audio_in_ids", AudioInIds); Add("audio_in_ids_start", AudioInIdsStart);
        Add("label_ids", LabelIds); Add("label_audio_ids", LabelAudioIds); Add("reward", Reward);
        return d;
    }

    /// <summary>Builds a batch from upstream-named tensors (absent name = None).</summary>
    public static HiggsBatch FromNamedTensors(IReadOnlyDictionary<string, Tensor> t)
    {
        Tensor? Get(string n) => t.TryGetValue(n, out var v) ? v : null;
        return new HiggsBatch
        {
            InputIds = Get("input_ids") ?? throw new InvalidDataException("batch has no input_ids"),
            AttentionMask = Get("attention_mask") ?? throw new InvalidDataException("batch has no attention_mask"),
            AudioFeatures = Get("audio_features"), AudioFeatureAttentionMask = Get("audio_feature_attention_mask"),
            AudioOutIds = Get("audio_out_ids"), AudioOutIdsStart = Get("audio_out_ids_start"),
            AudioOutIdsStartGroupLoc = Get("audio_out_ids_start_group_loc"),
            AudioInIds = Get("audio_in_ids"), AudioInIdsStart = Get("audio_in_ids_start"),
            LabelIds = Get("label_ids"), LabelAudioIds = Get("label_audio_ids"), Reward = Get("reward"),
        };
    }

    public void Dispose()
    {
        foreach (var t in ToNamedTensors().Values) t.Dispose();
    }
}
