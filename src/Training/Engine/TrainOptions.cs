using HiggsCluster.Planning;
using HiggsCluster.Training.Lora;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// Everything a training run reads, bound from YAML + HIGGS_ environment + --key=value (see <see cref="TrainConfig"/>).
/// Keys are "section.name"; <see cref="RunOptionKeys"/> is the single table of names, parsers and help. The values live in
/// one <see cref="RunOptions"/> record (<see cref="ToRecord"/>), which is what a cluster run carries.
/// </summary>
public sealed class TrainOptions
{
    // data
    public string Manifest { get => _r.Manifest; set => _r = _r with { Manifest = value }; }
    /// <summary>Mixed datasets: corpora sampled by weight (<see cref="Planning.WeightedEpochs"/>); empty = <see cref="Manifest"/> alone.</summary>
    public IReadOnlyList<Planning.Corpus> Manifests { get => _r.Manifests; set => _r = _r with { Manifests = value }; }
    public string? ValidationManifest { get => _r.ValidationManifest; set => _r = _r with { ValidationManifest = value }; }
    public string? DataRoot { get => _r.DataRoot; set => _r = _r with { DataRoot = value }; }
    public string TextTokenizer { get => _r.TextTokenizer; set => _r = _r with { TextTokenizer = value }; }
    public string AudioTokenizer { get => _r.AudioTokenizer; set => _r = _r with { AudioTokenizer = value }; }
    public string? CodeCache { get => _r.CodeCache; set => _r = _r with { CodeCache = value }; }
    public int? MaxTokens { get => _r.MaxTokens; set => _r = _r with { MaxTokens = value }; }
    public double? MaxAudioSeconds { get => _r.MaxAudioSeconds; set => _r = _r with { MaxAudioSeconds = value }; }
    public int MaxEntryBytes { get => _r.MaxEntryBytes; set => _r = _r with { MaxEntryBytes = value }; }
    public double ValidationFraction { get => _r.ValidationFraction; set => _r = _r with { ValidationFraction = value }; }
    public string CollatorPreset { get => _r.CollatorPreset; set => _r = _r with { CollatorPreset = value }; }
    // model
    public string BaseModelDir { get => _r.BaseModelDir; set => _r = _r with { BaseModelDir = value }; }
    public string Device { get => _r.Device; set => _r = _r with { Device = value }; }
    public string DType { get => _r.DType; set => _r = _r with { DType = value }; }
    public string? HubId { get => _r.HubId; set => _r = _r with { HubId = value }; }
    public string? Revision { get => _r.Revision; set => _r = _r with { Revision = value }; }
    // lora
    public int LoraR { get => _r.LoraR; set => _r = _r with { LoraR = value }; }
    public double LoraAlpha { get => _r.LoraAlpha; set => _r = _r with { LoraAlpha = value }; }
    public double LoraDropout { get => _r.LoraDropout; set => _r = _r with { LoraDropout = value }; }
    public IReadOnlyList<string> LoraTargets { get => _r.LoraTargets; set => _r = _r with { LoraTargets = value }; }
    // train
    public string OutputDir { get => _r.OutputDir; set => _r = _r with { OutputDir = value }; }
    public int BatchSize { get => _r.BatchSize; set => _r = _r with { BatchSize = value }; }
    public int GradAccumulation { get => _r.GradAccumulation; set => _r = _r with { GradAccumulation = value }; }
    public int Ranks { get => _r.Ranks; set => _r = _r with { Ranks = value }; }
    public string? Devices { get => _r.Devices; set => _r = _r with { Devices = value }; }
    public bool GradientCheckpointing { get => _r.GradientCheckpointing; set => _r = _r with { GradientCheckpointing = value }; }
    public double Epochs { get => _r.Epochs; set => _r = _r with { Epochs = value }; }
    public long MaxSteps { get => _r.MaxSteps; set => _r = _r with { MaxSteps = value }; }
    public double Lr { get => _r.Lr; set => _r = _r with { Lr = value }; }
    public int WarmupSteps { get => _r.WarmupSteps; set => _r = _r with { WarmupSteps = value }; }
    public ScheduleKind Schedule { get => _r.Schedule; set => _r = _r with { Schedule = value }; }
    public double WeightDecay { get => _r.WeightDecay; set => _r = _r with { WeightDecay = value }; }
    public double Beta1 { get => _r.Beta1; set => _r = _r with { Beta1 = value }; }
    public double Beta2 { get => _r.Beta2; set => _r = _r with { Beta2 = value }; }
    public double Eps { get => _r.Eps; set => _r = _r with { Eps = value }; }
    public double MaxGradNorm { get => _r.MaxGradNorm; set => _r = _r with { MaxGradNorm = value }; }
    public long Seed { get => _r.Seed; set => _r = _r with { Seed = value }; }
    public LossNormalisation LossNormalisation { get => _r.LossNormalisation; set => _r = _r with { LossNormalisation = value }; }
    public int NanPatience { get => _r.NanPatience; set => _r = _r with { NanPatience = value }; }
    public double TextLossWeight { get => _r.TextLossWeight; set => _r = _r with { TextLossWeight = value }; }
    public double AudioLossWeight { get => _r.AudioLossWeight; set => _r = _r with { AudioLossWeight = value }; }
    // eval / checkpoint / log
    public int ValSteps { get => _r.ValSteps; set => _r = _r with { ValSteps = value }; }
    public int EarlyStoppingPatience { get => _r.EarlyStoppingPatience; set => _r = _r with { EarlyStoppingPatience = value }; }
    public int Samples { get => _r.Samples; set => _r = _r with { Samples = value }; }
    public IReadOnlyList<string> SampleTexts { get => _r.SampleTexts; set => _r = _r with { SampleTexts = value }; }
    public double SampleMaxSeconds { get => _r.SampleMaxSeconds; set => _r = _r with { SampleMaxSeconds = value }; }
    public int SaveSteps { get => _r.SaveSteps; set => _r = _r with { SaveSteps = value }; }
    public int KeepLast { get => _r.KeepLast; set => _r = _r with { KeepLast = value }; }
    public int LogSteps { get => _r.LogSteps; set => _r = _r with { LogSteps = value }; }
    public bool TensorBoard { get => _r.TensorBoard; set => _r = _r with { TensorBoard = value }; }
    public bool Plots { get => _r.Plots; set => _r = _r with { Plots = value }; }
    public string Progress { get => _r.Progress; set => _r = _r with { Progress = value }; }

    public sealed record Key(string Name, string Help, Func<TrainOptions, string> Get, Action<TrainOptions, string> Set);

    /// <summary>The config keys (<see cref="RunOptionKeys"/>, the one parser) as setters of these options.</summary>
    public static readonly IReadOnlyList<Key> Keys = RunOptionKeys.All
        .Select(k => new Key(k.Name, k.Help, o => k.Get(o._r), (o, v) => o._r = k.Set(o._r, v))).ToList();

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
        if (checkFiles) CheckFiles();
        Need(MaxTokens is null || MaxTokens > 0, "data.max_tokens", "must be positive");
        Need(MaxAudioSeconds is null || (MaxAudioSeconds > 0 && double.IsFinite(MaxAudioSeconds.Value)), "data.max_audio_seconds", $"must be a positive number of seconds, got {MaxAudioSeconds}");
        Need(MaxEntryBytes is >= RunOptions.MinMaxEntryBytes and <= RunOptions.MaxMaxEntryBytes, "data.max_entry_bytes", RunOptionKeys.EntryBytesRange(MaxEntryBytes));
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

    /// <summary>
    /// The inputs exist on this machine. A node calls it on a spec's options (whose values were validated where the
    /// spec was made), because the files must be where that node reads them.
    /// </summary>
    public void CheckFiles()
    {
        void Need(bool ok, string key, string msg) { if (!ok) throw new TrainConfigException(key, msg); }
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
    public IReadOnlyList<double>? CorpusWeights => _r.CorpusWeights;

    /// <summary>The dtypes of this run (<c>model.dtype</c> on <paramref name="device"/>).</summary>
    public Model.PrecisionPolicy Precision(TorchSharp.torch.Device device) => Model.PrecisionPolicy.For(DType, device);

    public LoraConfig ToLoraConfig() => new() { R = LoraR, Alpha = LoraAlpha, Dropout = LoraDropout, TargetModules = LoraTargets, BaseModelNameOrPath = HubId ?? BaseModelDir, Revision = Revision };

    /// <summary>The resolved values, key → text, in table order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Resolved() => RunOptionKeys.Resolved(_r);

    /// <summary>Options from resolved values (as `run submit` receives them); an unknown key is an error.</summary>
    public static TrainOptions FromResolved(IEnumerable<KeyValuePair<string, string>> values) => From(RunOptionKeys.FromResolved(values));

    /// <summary>
    /// The values as the immutable record a run carries (the one conversion: these options are that record behind
    /// setters, so the single-process trainer and the cluster read the same values).
    /// </summary>
    public RunOptions ToRecord() => _r;

    public static TrainOptions From(RunOptions record) => new() { _r = record };

    public TrainOptions Clone() => From(_r);

    private RunOptions _r = new();

    // Hub ids are "owner/name" of letters, digits, '-', '_' and '.'; anything else would be read as a local folder by PEFT.
    private static readonly System.Text.RegularExpressions.Regex HubIdPattern = new(@"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$");

    private static string D(double v) => RunOptionKeys.D(v);
}
