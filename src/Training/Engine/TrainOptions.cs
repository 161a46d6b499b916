using System.Globalization;
using HiggsCluster.Training.Lora;

namespace HiggsCluster.Training.Engine;

public enum LossNormalisation
{
    /// <summary>HF Trainer: every micro-batch's mean loss counts the same (grad = mean over micro-batches of ∇mean-loss).</summary>
    Mean,
    /// <summary>torchtune: micro-batch losses weighted by their scored tokens (text targets + audio frames per codebook).</summary>
    Tokens,
}

public sealed class TrainConfigException(string key, string message) : Exception($"config key '{key}': {message}")
{
    public string Key { get; } = key;
}

/// <summary>
/// Everything a training run reads, bound from YAML + HIGGS_ environment + --key=value (see <see cref="TrainConfig"/>).
/// Keys are "section.name"; <see cref="Keys"/> is the single table of names, parsers and help.
/// </summary>
public sealed class TrainOptions
{
    // data
    public string Manifest { get; set; } = "";
    /// <summary>Mixed datasets: corpora sampled by weight (<see cref="Planning.WeightedEpochs"/>); empty = <see cref="Manifest"/> alone.</summary>
    public IReadOnlyList<Planning.Corpus> Manifests { get; set; } = Array.Empty<Planning.Corpus>();
    public string? ValidationManifest { get; set; }
    public string? DataRoot { get; set; }
    public string TextTokenizer { get; set; } = "";
    public string AudioTokenizer { get; set; } = "";
    public string? CodeCache { get; set; }
    public int? MaxTokens { get; set; }
    public double? MaxAudioSeconds { get; set; } = Data.SampleBuilderOptions.DefaultMaxAudioSeconds;
    public int MaxEntryBytes { get; set; } = Data.ManifestReader.DefaultMaxEntryBytes;
    public double ValidationFraction { get; set; } = 0.05;
    public string CollatorPreset { get; set; } = "model";
    // model
    public string BaseModelDir { get; set; } = "";
    public string Device { get; set; } = "cpu";
    public string DType { get; set; } = "auto";
    public string? HubId { get; set; }
    public string? Revision { get; set; }
    // lora
    public int LoraR { get; set; } = 16;
    public double LoraAlpha { get; set; } = 32;
    public double LoraDropout { get; set; } = 0.05;
    public IReadOnlyList<string> LoraTargets { get; set; } = LoraConfig.DefaultTargets;
    // train
    public string OutputDir { get; set; } = "runs/train";
    public int BatchSize { get; set; } = 1;
    public int GradAccumulation { get; set; } = 1;
    public int Ranks { get; set; } = 1;
    public string? Devices { get; set; }
    public bool GradientCheckpointing { get; set; }
    public double Epochs { get; set; } = 1;
    public long MaxSteps { get; set; }
    public double Lr { get; set; } = 2e-4;
    public int WarmupSteps { get; set; }
    public ScheduleKind Schedule { get; set; } = ScheduleKind.Cosine;
    public double WeightDecay { get; set; } = 0.01;
    public double Beta1 { get; set; } = 0.9;
    public double Beta2 { get; set; } = 0.95;
    public double Eps { get; set; } = 1e-8;
    public double MaxGradNorm { get; set; } = 1.0;
    public long Seed { get; set; } = 42;
    public LossNormalisation LossNormalisation { get; set; } = LossNormalisation.Mean;
    public int NanPatience { get; set; } = 5;
    public double TextLossWeight { get; set; } = 1.0;
    public double AudioLossWeight { get; set; } = 1.0;
    // eval / checkpoint / log
    public int ValSteps { get; set; } = 100;
    public int EarlyStoppingPatience { get; set; }
    public int Samples { get; set; } = 4;
    public IReadOnlyList<string> SampleTexts { get; set; } = Array.Empty<string>();
    public double SampleMaxSeconds { get; set; } = 20;
    public int SaveSteps { get; set; } = 500;
    public int KeepLast { get; set; } = 3;
    public int LogSteps { get; set; } = 1;
    public bool TensorBoard { get; set; } = true;
    public bool Plots { get; set; } = true;
    public string Progress { get; set; } = "auto";

    public sealed record Key(string Name, string Help, Func<TrainOptions, string> Get, Action<TrainOptions, string> Set);

    public static readonly IReadOnlyList<Key> Keys = new List<Key>
    {
        S("data.manifest", "training manifest (JSONL ChatML)", o => o.Manifest, (o, v) => o.Manifest = v),
        S("data.manifests", "mixed datasets instead of data.manifest: a list of {path, weight, data_root}, sampled by weight (a JSON list here)",
            o => o.Manifests.Count == 0 ? "" : Planning.DataMix.Format(o.Manifests), (o, v) => o.Manifests = Corpora("data.manifests", v)),
        S("data.validation_manifest", "separate validation manifest (else a seeded hash split)", o => o.ValidationManifest ?? "", (o, v) => o.ValidationManifest = Null(v)),
        S("data.data_root", "audio paths must stay under this folder (default: the folder of each manifest)", o => o.DataRoot ?? "", (o, v) => o.DataRoot = Null(v)),
        S("data.text_tokenizer", "tokenizer.json of the base model", o => o.TextTokenizer, (o, v) => o.TextTokenizer = v),
        S("data.audio_tokenizer", "audio tokenizer folder", o => o.AudioTokenizer, (o, v) => o.AudioTokenizer = v),
        S("data.code_cache", "audio code cache folder (default OUTPUT/code-cache)", o => o.CodeCache ?? "", (o, v) => o.CodeCache = Null(v)),
        S("data.max_tokens", "longest sample in positions (empty = no limit)", o => o.MaxTokens?.ToString(Inv) ?? "", (o, v) => o.MaxTokens = Null(v) is null ? null : Int("data.max_tokens", v)),
        S("data.max_audio_seconds", "longest audio clip in seconds, read from its header before decoding (empty = no limit)", o => o.MaxAudioSeconds is { } m ? D(m) : "", (o, v) => o.MaxAudioSeconds = Null(v) is null ? null : Dbl("data.max_audio_seconds", v)),
        S("data.max_entry_bytes", "longest manifest entry (JSONL line or array element) in bytes; a longer one is skipped unread and reported", o => o.MaxEntryBytes.ToString(Inv), (o, v) => o.MaxEntryBytes = EntryBytes(v)),
        S("data.validation_fraction", "share of entries held out by the hash split", o => D(o.ValidationFraction), (o, v) => o.ValidationFraction = Dbl("data.validation_fraction", v)),
        S("data.collator_preset", "collator preset: model or seed", o => o.CollatorPreset, (o, v) => o.CollatorPreset = v),
        S("model.base_checkpoint", "Higgs checkpoint folder (config.json + safetensors)", o => o.BaseModelDir, (o, v) => o.BaseModelDir = v),
        S("model.device", "cpu, cuda or cuda:N", o => o.Device, (o, v) => o.Device = v),
        S("model.hub_id", "Hugging Face id of the base (owner/name), written to adapter_config.json as base_model_name_or_path (else the local folder)", o => o.HubId ?? "", (o, v) => o.HubId = Null(v)),
        S("model.revision", "Hugging Face revision (commit or branch) of the base, written to adapter_config.json; needs model.hub_id", o => o.Revision ?? "", (o, v) => o.Revision = Null(v)),
        S("model.dtype", "base weights: auto (bf16 on CUDA, fp32 on CPU), bf16 or fp32; LoRA, AdamW and the loss stay fp32", o => o.DType, (o, v) => o.DType = v.Trim()),
        S("lora.r", "LoRA rank", o => o.LoraR.ToString(Inv), (o, v) => o.LoraR = Int("lora.r", v)),
        S("lora.alpha", "LoRA alpha", o => D(o.LoraAlpha), (o, v) => o.LoraAlpha = Dbl("lora.alpha", v)),
        S("lora.dropout", "LoRA dropout", o => D(o.LoraDropout), (o, v) => o.LoraDropout = Dbl("lora.dropout", v)),
        S("lora.targets", "module names (comma list)", o => string.Join(",", o.LoraTargets), (o, v) => o.LoraTargets = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)),
        S("train.output_dir", "run folder", o => o.OutputDir, (o, v) => o.OutputDir = v),
        S("train.batch_size", "samples per micro-batch", o => o.BatchSize.ToString(Inv), (o, v) => o.BatchSize = Int("train.batch_size", v)),
        S("train.grad_accumulation", "micro-batches per optimizer step", o => o.GradAccumulation.ToString(Inv), (o, v) => o.GradAccumulation = Int("train.grad_accumulation", v)),
        S("train.ranks", "plan ranks: global batch = batch_size × grad_accumulation × ranks; cluster workers share them", o => o.Ranks.ToString(Inv), (o, v) => o.Ranks = Int("train.ranks", v)),
        S("train.devices", "GPUs of this machine for `higgs train`: all, a count or a list like 0,3,5 (one worker process each; empty = in-process workers)", o => o.Devices ?? "", (o, v) => o.Devices = Null(v)),
        S("train.gradient_checkpointing", "recompute each decoder layer in backward instead of keeping its activations", o => B(o.GradientCheckpointing), (o, v) => o.GradientCheckpointing = Bool("train.gradient_checkpointing", v)),
        S("train.epochs", "epochs (fractions allowed)", o => D(o.Epochs), (o, v) => o.Epochs = Dbl("train.epochs", v)),
        S("train.max_steps", "optimizer steps; > 0 overrides epochs", o => o.MaxSteps.ToString(Inv), (o, v) => o.MaxSteps = Int("train.max_steps", v)),
        S("train.lr", "peak learning rate", o => D(o.Lr), (o, v) => o.Lr = Dbl("train.lr", v)),
        S("train.warmup_steps", "linear warmup steps", o => o.WarmupSteps.ToString(Inv), (o, v) => o.WarmupSteps = Int("train.warmup_steps", v)),
        S("train.schedule", "cosine, linear or constant", o => o.Schedule.ToString().ToLowerInvariant(), (o, v) => o.Schedule = Enum<ScheduleKind>("train.schedule", v)),
        S("train.weight_decay", "AdamW weight decay", o => D(o.WeightDecay), (o, v) => o.WeightDecay = Dbl("train.weight_decay", v)),
        S("train.beta1", "AdamW beta1", o => D(o.Beta1), (o, v) => o.Beta1 = Dbl("train.beta1", v)),
        S("train.beta2", "AdamW beta2", o => D(o.Beta2), (o, v) => o.Beta2 = Dbl("train.beta2", v)),
        S("train.eps", "AdamW eps", o => D(o.Eps), (o, v) => o.Eps = Dbl("train.eps", v)),
        S("train.max_grad_norm", "gradient clipping norm (0 = off)", o => D(o.MaxGradNorm), (o, v) => o.MaxGradNorm = Dbl("train.max_grad_norm", v)),
        S("train.seed", "seed of shuffling, split, LoRA init and dropout", o => o.Seed.ToString(Inv), (o, v) => o.Seed = Int("train.seed", v)),
        S("train.loss_normalisation", "mean (HF) or tokens (torchtune)", o => o.LossNormalisation.ToString().ToLowerInvariant(), (o, v) => o.LossNormalisation = Enum<LossNormalisation>("train.loss_normalisation", v)),
        S("train.nan_patience", "abort after this many non-finite steps in a row", o => o.NanPatience.ToString(Inv), (o, v) => o.NanPatience = Int("train.nan_patience", v)),
        S("train.text_loss_weight", "weight of the text loss", o => D(o.TextLossWeight), (o, v) => o.TextLossWeight = Dbl("train.text_loss_weight", v)),
        S("train.audio_loss_weight", "weight of the audio loss", o => D(o.AudioLossWeight), (o, v) => o.AudioLossWeight = Dbl("train.audio_loss_weight", v)),
        S("eval.val_steps", "validate every N steps (0 = only at the end)", o => o.ValSteps.ToString(Inv), (o, v) => o.ValSteps = Int("eval.val_steps", v)),
        S("eval.early_stopping_patience", "stop after N validations without improvement (0 = off)", o => o.EarlyStoppingPatience.ToString(Inv), (o, v) => o.EarlyStoppingPatience = Int("eval.early_stopping_patience", v)),
        S("eval.samples", "audio samples at every validation: the first N validation entries spoken by the current weights (0 = off)", o => o.Samples.ToString(Inv), (o, v) => o.Samples = Int("eval.samples", v)),
        S("eval.sample_texts", "texts to speak at every validation instead of validation entries (a YAML list; one per line here)", o => string.Join("\n", o.SampleTexts), (o, v) => o.SampleTexts = v.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)),
        S("eval.sample_max_seconds", "longest audio sample, in seconds", o => D(o.SampleMaxSeconds), (o, v) => o.SampleMaxSeconds = Dbl("eval.sample_max_seconds", v)),
        S("checkpoint.save_steps", "checkpoint every N steps (0 = only at the end)", o => o.SaveSteps.ToString(Inv), (o, v) => o.SaveSteps = Int("checkpoint.save_steps", v)),
        S("checkpoint.keep_last", "checkpoints kept besides the best", o => o.KeepLast.ToString(Inv), (o, v) => o.KeepLast = Int("checkpoint.keep_last", v)),
        S("log.log_steps", "print a line every N steps", o => o.LogSteps.ToString(Inv), (o, v) => o.LogSteps = Int("log.log_steps", v)),
        S("log.tensorboard", "write tfevents files", o => B(o.TensorBoard), (o, v) => o.TensorBoard = Bool("log.tensorboard", v)),
        S("log.plots", "write PNG loss plots", o => B(o.Plots), (o, v) => o.Plots = Bool("log.plots", v)),
        S("log.progress", "auto, on or off (live progress bar)", o => o.Progress, (o, v) => o.Progress = v),
    };

    /// <summary>Rejects bad values before any work, naming the key.</summary>
    public void Validate(bool checkFiles = true)
    {
        void Need(bool ok, string key, string msg) { if (!ok) throw new TrainConfigException(key, msg); }
        Need(!string.IsNullOrWhiteSpace(Manifest) || Manifests.Count > 0, "data.manifest", "is required (or data.manifests)");
        Need(string.IsNullOrWhiteSpace(Manifest) || Manifests.Count == 0, "data.manifests", "give data.manifest or data.manifests, not both (data.manifest is one corpus of weight 1)");
        for (int i = 0; i < Manifests.Count; i++)
        {
            Need(!string.IsNullOrWhiteSpace(Manifests[i].Path), $"data.manifests[{i}].path", "is required");
            Need(Manifests[i].Weight > 0 && double.IsFinite(Manifests[i].Weight), $"data.manifests[{i}].weight", $"must be positive, got {D(Manifests[i].Weight)}");
        }
        Need(!string.IsNullOrWhiteSpace(TextTokenizer), "data.text_tokenizer", "is required");
        Need(!string.IsNullOrWhiteSpace(AudioTokenizer), "data.audio_tokenizer", "is required");
        Need(!string.IsNullOrWhiteSpace(BaseModelDir), "model.base_checkpoint", "is required");
        Need(!string.IsNullOrWhiteSpace(OutputDir), "train.output_dir", "is required");
        if (checkFiles)
        {
            if (Manifests.Count == 0) Need(File.Exists(Manifest), "data.manifest", $"file not found: {Manifest}");
            for (int i = 0; i < Manifests.Count; i++)
            {
                Need(File.Exists(Manifests[i].Path), $"data.manifests[{i}].path", $"file not found: {Manifests[i].Path}");
                Need(Manifests[i].DataRoot is not { } r || Directory.Exists(r), $"data.manifests[{i}].data_root", $"folder not found: {Manifests[i].DataRoot}");
            }
            Need(ValidationManifest is null || File.Exists(ValidationManifest), "data.validation_manifest", $"file not found: {ValidationManifest}");
            Need(File.Exists(TextTokenizer), "data.text_tokenizer", $"file not found: {TextTokenizer}");
            Need(Directory.Exists(AudioTokenizer), "data.audio_tokenizer", $"folder not found: {AudioTokenizer}");
            Need(File.Exists(Path.Combine(BaseModelDir, "config.json")), "model.base_checkpoint", $"no config.json in {BaseModelDir}");
            var baseMissing = Model.ModelFolders.MissingInBase(BaseModelDir);
            Need(baseMissing.Count == 0, "model.base_checkpoint", Model.ModelFolders.Describe("the base model folder", BaseModelDir, baseMissing) ?? "");
            var tokMissing = Model.ModelFolders.MissingInAudioTokenizer(AudioTokenizer);
            Need(tokMissing.Count == 0, "data.audio_tokenizer", Model.ModelFolders.Describe("the audio tokenizer folder", AudioTokenizer, tokMissing) ?? "");
            Need(DataRoot is null || Directory.Exists(DataRoot), "data.data_root", $"folder not found: {DataRoot}");
        }
        Need(MaxTokens is null || MaxTokens > 0, "data.max_tokens", "must be positive");
        Need(MaxAudioSeconds is null || (MaxAudioSeconds > 0 && double.IsFinite(MaxAudioSeconds.Value)), "data.max_audio_seconds", $"must be a positive number of seconds, got {MaxAudioSeconds}");
        Need(MaxEntryBytes is >= Data.ManifestReader.MinMaxEntryBytes and <= Data.ManifestReader.MaxMaxEntryBytes, "data.max_entry_bytes", EntryBytesRange(MaxEntryBytes));
        Need(ValidationFraction >= 0 && ValidationFraction < 1, "data.validation_fraction", $"must be in [0, 1), got {D(ValidationFraction)}");
        Need(Collation.CollatorPresets.Names.Contains(CollatorPreset), "data.collator_preset", $"'{CollatorPreset}' is not one of {string.Join(", ", Collation.CollatorPresets.Names)}");
        Need(Device is "cpu" or "cuda" || Device.StartsWith("cuda:", StringComparison.Ordinal), "model.device", $"'{Device}' is not cpu, cuda or cuda:N");
        Need(HubId is null || HubIdPattern.IsMatch(HubId), "model.hub_id", $"'{HubId}' is not a Hugging Face id (owner/name)");
        Need(Revision is null || HubId is not null, "model.revision", "needs model.hub_id (a revision names a version of a hub repository)");
        Need(Revision is null || !Revision.Any(char.IsWhiteSpace), "model.revision", $"'{Revision}' contains whitespace");
        Need(Model.PrecisionPolicy.Names.Contains(DType), "model.dtype", $"'{DType}' is not one of {string.Join(", ", Model.PrecisionPolicy.Names)}");
        if (Devices is not null)
            try { Cuda.GpuSelection.Parse(Devices); }
            catch (FormatException e) { throw new TrainConfigException("train.devices", e.Message); }
        Need(LoraR > 0, "lora.r", $"must be positive, got {LoraR}");
        Need(LoraAlpha > 0, "lora.alpha", "must be positive");
        Need(LoraDropout >= 0 && LoraDropout < 1, "lora.dropout", $"must be in [0, 1), got {D(LoraDropout)}");
        Need(LoraTargets.Count > 0, "lora.targets", "must name at least one module");
        Need(BatchSize > 0, "train.batch_size", $"must be positive, got {BatchSize}");
        Need(GradAccumulation > 0, "train.grad_accumulation", $"must be positive, got {GradAccumulation}");
        Need(Ranks is > 0 and <= 4096, "train.ranks", $"must be 1..4096, got {Ranks}");
        Need(Epochs > 0 || MaxSteps > 0, "train.epochs", "must be positive (or set train.max_steps)");
        Need(MaxSteps >= 0, "train.max_steps", "must not be negative");
        Need(Lr > 0 && double.IsFinite(Lr), "train.lr", $"must be a positive number, got {D(Lr)}");
        Need(WarmupSteps >= 0, "train.warmup_steps", "must not be negative");
        Need(WeightDecay >= 0, "train.weight_decay", "must not be negative");
        Need(Beta1 >= 0 && Beta1 < 1, "train.beta1", "must be in [0, 1)");
        Need(Beta2 >= 0 && Beta2 < 1, "train.beta2", "must be in [0, 1)");
        Need(Eps > 0, "train.eps", "must be positive");
        Need(MaxGradNorm >= 0, "train.max_grad_norm", "must not be negative");
        Need(NanPatience > 0, "train.nan_patience", "must be positive");
        Need(TextLossWeight >= 0 && AudioLossWeight >= 0 && TextLossWeight + AudioLossWeight > 0, "train.text_loss_weight", "loss weights must be ≥ 0 and not both 0");
        Need(ValSteps >= 0, "eval.val_steps", "must not be negative");
        Need(EarlyStoppingPatience >= 0, "eval.early_stopping_patience", "must not be negative");
        Need(Samples is >= 0 and <= 64, "eval.samples", $"must be 0..64, got {Samples}");
        Need(SampleTexts.Count <= 64, "eval.sample_texts", $"at most 64 texts, got {SampleTexts.Count}");
        Need(SampleMaxSeconds is > 0 and <= 600, "eval.sample_max_seconds", $"must be in (0, 600], got {D(SampleMaxSeconds)}");
        Need(SaveSteps >= 0, "checkpoint.save_steps", "must not be negative");
        Need(KeepLast > 0, "checkpoint.keep_last", "must be positive");
        Need(LogSteps > 0, "log.log_steps", "must be positive");
        Need(Progress is "auto" or "on" or "off", "log.progress", $"'{Progress}' is not auto, on or off");
    }

    /// <summary>The run's sample plan over the usable training ids (drawn by corpus weight for a mixed dataset).</summary>
    public Planning.SamplePlan Plan(IEnumerable<long> trainIds) =>
        new(trainIds, (ulong)Seed, BatchSize, GradAccumulation, Ranks, Epochs, MaxSteps > 0 ? MaxSteps : null, CorpusWeights);

    /// <summary>
    /// The corpora the run reads, corpus c's entries having ids from <see cref="Planning.DataMix.IdOf"/>(c, 0):
    /// data.manifests, or data.manifest as the one corpus; a corpus without its own data_root uses data.data_root.
    /// </summary>
    public IReadOnlyList<Planning.Corpus> Corpora() => Manifests.Count == 0
        ? new[] { new Planning.Corpus(Manifest, 1, DataRoot) }
        : Manifests.Select(c => c with { DataRoot = c.DataRoot ?? DataRoot }).ToArray();

    /// <summary>The plan's corpus weights: null for one manifest, whose plan is the plain shuffle it always was.</summary>
    public IReadOnlyList<double>? CorpusWeights => Manifests.Count == 0 ? null : Manifests.Select(c => c.Weight).ToArray();

    /// <summary>The dtypes of this run (<c>model.dtype</c> on <paramref name="device"/>).</summary>
    public Model.PrecisionPolicy Precision(TorchSharp.torch.Device device) => Model.PrecisionPolicy.For(DType, device);

    public LoraConfig ToLoraConfig() => new() { R = LoraR, Alpha = LoraAlpha, Dropout = LoraDropout, TargetModules = LoraTargets, BaseModelNameOrPath = HubId ?? BaseModelDir, Revision = Revision };

    /// <summary>The resolved values, key → text, in table order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Resolved() => Keys.Select(k => new KeyValuePair<string, string>(k.Name, k.Get(this))).ToList();

    /// <summary>Options from resolved values (as a cluster node receives them); an unknown key is an error.</summary>
    public static TrainOptions FromResolved(IEnumerable<KeyValuePair<string, string>> values)
    {
        var o = new TrainOptions();
        foreach (var (key, value) in values)
        {
            var k = Keys.FirstOrDefault(x => x.Name == key) ?? throw new TrainConfigException(key, "unknown key");
            k.Set(o, value);
        }
        return o;
    }

    public TrainOptions Clone()
    {
        var c = new TrainOptions();
        foreach (var k in Keys) k.Set(c, k.Get(this));
        return c;
    }

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static Key S(string n, string h, Func<TrainOptions, string> g, Action<TrainOptions, string> s) => new(n, h, g, s);
    // Hub ids are "owner/name" of letters, digits, '-', '_' and '.'; anything else would be read as a local folder by PEFT.
    private static readonly System.Text.RegularExpressions.Regex HubIdPattern = new(@"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$");

    private static string? Null(string v) => string.IsNullOrWhiteSpace(v) ? null : v;
    private static string D(double v) => v.ToString("R", Inv);
    private static string B(bool v) => v ? "true" : "false";

    private static IReadOnlyList<Planning.Corpus> Corpora(string key, string v)
    {
        try { return Planning.DataMix.Parse(v); }
        catch (FormatException e) when (e.Message.StartsWith('[') && e.Message.IndexOf(' ') is > 0 and var sp)
        {
            throw new TrainConfigException(key + e.Message[..sp], e.Message[(sp + 1)..]); // names the item: data.manifests[1].weight
        }
        catch (FormatException e) { throw new TrainConfigException(key, e.Message); }
    }

    private static string EntryBytesRange(int got) =>
        $"must be {Data.ManifestReader.MinMaxEntryBytes}..{Data.ManifestReader.MaxMaxEntryBytes} bytes, got {got}";

    /// <summary>Checked when set: `data validate --config` reads the key without validating the whole config.</summary>
    private static int EntryBytes(string v) => Int("data.max_entry_bytes", v) is var b && b is >= Data.ManifestReader.MinMaxEntryBytes and <= Data.ManifestReader.MaxMaxEntryBytes
        ? b : throw new TrainConfigException("data.max_entry_bytes", EntryBytesRange(b));

    private static int Int(string key, string v) =>
        int.TryParse(v.Trim(), NumberStyles.Integer, Inv, out var i) ? i : throw new TrainConfigException(key, $"must be an integer, got '{v}'");

    private static double Dbl(string key, string v) =>
        double.TryParse(v.Trim(), NumberStyles.Float, Inv, out var d) && double.IsFinite(d) ? d : throw new TrainConfigException(key, $"must be a number, got '{v}'");

    private static bool Bool(string key, string v) => v.Trim().ToLowerInvariant() switch
    {
        "true" or "yes" or "on" or "1" => true,
        "false" or "no" or "off" or "0" => false,
        _ => throw new TrainConfigException(key, $"must be true or false, got '{v}'"),
    };

    private static T Enum<T>(string key, string v) where T : struct, System.Enum =>
        System.Enum.TryParse<T>(v.Trim(), ignoreCase: true, out var e) && System.Enum.IsDefined(e) ? e
            : throw new TrainConfigException(key, $"'{v}' is not one of {string.Join(", ", System.Enum.GetNames<T>().Select(n => n.ToLowerInvariant()))}");
}
