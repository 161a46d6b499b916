using System.Text.Json.Serialization;

namespace HiggsCluster.Planning;

/// <summary>How micro-batch losses are combined into the step's gradient (see the training engine).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<LossNormalisation>))]
public enum LossNormalisation
{
    /// <summary>HF Trainer: every micro-batch's mean loss counts the same (grad = mean over micro-batches of ∇mean-loss).</summary>
    Mean,
    /// <summary>torchtune: micro-batch losses weighted by their scored tokens (text targets + audio frames per codebook).</summary>
    Tokens,
}

[JsonConverter(typeof(JsonStringEnumConverter<ScheduleKind>))]
public enum ScheduleKind { Cosine, Linear, Constant }

/// <summary>A config value refused: the message names the key (train.lr, data.manifests[1].weight, ...).</summary>
public sealed class TrainConfigException(string key, string message) : Exception($"config key '{key}': {message}")
{
    public string Key { get; } = key;
}

/// <summary>
/// A training run's settings as plain, immutable data: what a run submitted to the cluster carries to every node, so
/// no node parses config text again. Each property's JSON name is its config key, which is the format wherever the
/// record is written (the wire, the coordinator journal): renaming a property never changes it. The text form
/// (YAML, --key=value, resolved_config.yaml) is <see cref="RunOptionKeys"/>; equality is equality of that text form,
/// which holds every value exactly, so two records with equal lists are equal.
/// </summary>
public sealed record RunOptions
{
    public const double DefaultMaxAudioSeconds = 60;
    /// <summary>
    /// The longest manifest entry (a JSONL line or an array element) read: a longer one is an error for that entry
    /// alone, skipped without being held in memory. 32 MiB holds a minute of 48 kHz stereo audio as raw_audio base64.
    /// </summary>
    public const int DefaultMaxEntryBytes = 32 << 20;
    /// <summary>Bounds of <c>data.max_entry_bytes</c>: a usable entry needs more than 1 KiB rarely, and one entry is held whole in memory.</summary>
    public const int MinMaxEntryBytes = 1 << 10, MaxMaxEntryBytes = 1 << 30;
    public static readonly IReadOnlyList<string> DefaultLoraTargets = new[] { "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj" };

    // data
    [JsonPropertyName("data.manifest")] public string Manifest { get; init; } = "";
    /// <summary>Mixed datasets: corpora sampled by weight (<see cref="WeightedEpochs"/>); empty = <see cref="Manifest"/> alone.</summary>
    [JsonPropertyName("data.manifests")] public IReadOnlyList<Corpus> Manifests { get; init; } = Array.Empty<Corpus>();
    [JsonPropertyName("data.validation_manifest")] public string? ValidationManifest { get; init; }
    [JsonPropertyName("data.data_root")] public string? DataRoot { get; init; }
    [JsonPropertyName("data.text_tokenizer")] public string TextTokenizer { get; init; } = "";
    [JsonPropertyName("data.audio_tokenizer")] public string AudioTokenizer { get; init; } = "";
    [JsonPropertyName("data.code_cache")] public string? CodeCache { get; init; }
    [JsonPropertyName("data.max_tokens")] public int? MaxTokens { get; init; }
    [JsonPropertyName("data.max_audio_seconds")] public double? MaxAudioSeconds { get; init; } = DefaultMaxAudioSeconds;
    [JsonPropertyName("data.max_entry_bytes")] public int MaxEntryBytes { get; init; } = DefaultMaxEntryBytes;
    [JsonPropertyName("data.validation_fraction")] public double ValidationFraction { get; init; } = 0.05;
    [JsonPropertyName("data.collator_preset")] public string CollatorPreset { get; init; } = "model";
    // model
    [JsonPropertyName("model.base_checkpoint")] public string BaseModelDir { get; init; } = "";
    [JsonPropertyName("model.device")] public string Device { get; init; } = "cpu";
    [JsonPropertyName("model.dtype")] public string DType { get; init; } = "auto";
    [JsonPropertyName("model.hub_id")] public string? HubId { get; init; }
    [JsonPropertyName("model.revision")] public string? Revision { get; init; }
    // lora
    [JsonPropertyName("lora.r")] public int LoraR { get; init; } = 16;
    [JsonPropertyName("lora.alpha")] public double LoraAlpha { get; init; } = 32;
    [JsonPropertyName("lora.dropout")] public double LoraDropout { get; init; } = 0.05;
    [JsonPropertyName("lora.targets")] public IReadOnlyList<string> LoraTargets { get; init; } = DefaultLoraTargets;
    // train
    [JsonPropertyName("train.output_dir")] public string OutputDir { get; init; } = "runs/train";
    [JsonPropertyName("train.batch_size")] public int BatchSize { get; init; } = 1;
    [JsonPropertyName("train.grad_accumulation")] public int GradAccumulation { get; init; } = 1;
    [JsonPropertyName("train.ranks")] public int Ranks { get; init; } = 1;
    [JsonPropertyName("train.devices")] public string? Devices { get; init; }
    [JsonPropertyName("train.gradient_checkpointing")] public bool GradientCheckpointing { get; init; }
    [JsonPropertyName("train.epochs")] public double Epochs { get; init; } = 1;
    [JsonPropertyName("train.max_steps")] public long MaxSteps { get; init; }
    [JsonPropertyName("train.lr")] public double Lr { get; init; } = 2e-4;
    [JsonPropertyName("train.warmup_steps")] public int WarmupSteps { get; init; }
    [JsonPropertyName("train.schedule")] public ScheduleKind Schedule { get; init; } = ScheduleKind.Cosine;
    [JsonPropertyName("train.weight_decay")] public double WeightDecay { get; init; } = 0.01;
    [JsonPropertyName("train.beta1")] public double Beta1 { get; init; } = 0.9;
    [JsonPropertyName("train.beta2")] public double Beta2 { get; init; } = 0.95;
    [JsonPropertyName("train.eps")] public double Eps { get; init; } = 1e-8;
    [JsonPropertyName("train.max_grad_norm")] public double MaxGradNorm { get; init; } = 1.0;
    [JsonPropertyName("train.seed")] public long Seed { get; init; } = 42;
    [JsonPropertyName("train.loss_normalisation")] public LossNormalisation LossNormalisation { get; init; } = LossNormalisation.Mean;
    [JsonPropertyName("train.nan_patience")] public int NanPatience { get; init; } = 5;
    [JsonPropertyName("train.text_loss_weight")] public double TextLossWeight { get; init; } = 1.0;
    [JsonPropertyName("train.audio_loss_weight")] public double AudioLossWeight { get; init; } = 1.0;
    // eval / checkpoint / log
    [JsonPropertyName("eval.val_steps")] public int ValSteps { get; init; } = 100;
    [JsonPropertyName("eval.early_stopping_patience")] public int EarlyStoppingPatience { get; init; }
    [JsonPropertyName("eval.samples")] public int Samples { get; init; } = 4;
    [JsonPropertyName("eval.sample_texts")] public IReadOnlyList<string> SampleTexts { get; init; } = Array.Empty<string>();
    [JsonPropertyName("eval.sample_max_seconds")] public double SampleMaxSeconds { get; init; } = 20;
    [JsonPropertyName("checkpoint.save_steps")] public int SaveSteps { get; init; } = 500;
    [JsonPropertyName("checkpoint.keep_last")] public int KeepLast { get; init; } = 3;
    [JsonPropertyName("log.log_steps")] public int LogSteps { get; init; } = 1;
    [JsonPropertyName("log.tensorboard")] public bool TensorBoard { get; init; } = true;
    [JsonPropertyName("log.plots")] public bool Plots { get; init; } = true;
    [JsonPropertyName("log.progress")] public string Progress { get; init; } = "auto";

    /// <summary>The corpus weights of a mixed dataset; null for one manifest, whose plan is the plain shuffle.</summary>
    [JsonIgnore] public IReadOnlyList<double>? CorpusWeights => Manifests.Count == 0 ? null : Manifests.Select(c => c.Weight).ToArray();

    public bool Equals(RunOptions? other) =>
        other is not null && (ReferenceEquals(this, other) || RunOptionKeys.Resolved(this).SequenceEqual(RunOptionKeys.Resolved(other)));

    public override int GetHashCode() => HashCode.Combine(Manifest, OutputDir, Lr, Seed, BatchSize);
}
