using System.Globalization;

namespace HiggsCluster.Planning;

/// <summary>
/// The text form of <see cref="RunOptions"/>: one table of config keys ("section.name"), their help, how each value is
/// written and how it is read back. It is the only parser of config text: YAML, environment and --key=value binding,
/// `run submit`'s resolved pairs and old coordinator journals (which held the resolved pairs) all go through it.
/// Reading checks each value's form (a number, a list) and names the key; ranges and files are checked where the
/// options are validated.
/// </summary>
public static class RunOptionKeys
{
    public sealed record Key(string Name, string Help, Func<RunOptions, string> Get, Func<RunOptions, string, RunOptions> Set);

    public static readonly IReadOnlyList<Key> All = new List<Key>
    {
        S("data.manifest", "training manifest (JSONL ChatML)", o => o.Manifest, (o, v) => o with { Manifest = v }),
        S("data.manifests", "mixed datasets instead of data.manifest: a list of {path, weight, data_root}, sampled by weight (a JSON list here)",
            o => o.Manifests.Count == 0 ? "" : DataMix.Format(o.Manifests), (o, v) => o with { Manifests = Corpora("data.manifests", v) }),
        S("data.validation_manifest", "separate validation manifest (else a seeded hash split)", o => o.ValidationManifest ?? "", (o, v) => o with { ValidationManifest = Null(v) }),
        S("data.data_root", "audio paths must stay under this folder (default: the folder of each manifest)", o => o.DataRoot ?? "", (o, v) => o with { DataRoot = Null(v) }),
        S("data.text_tokenizer", "tokenizer.json of the base model", o => o.TextTokenizer, (o, v) => o with { TextTokenizer = v }),
        S("data.audio_tokenizer", "audio tokenizer folder", o => o.AudioTokenizer, (o, v) => o with { AudioTokenizer = v }),
        S("data.code_cache", "audio code cache folder (default OUTPUT/code-cache)", o => o.CodeCache ?? "", (o, v) => o with { CodeCache = Null(v) }),
        S("data.max_tokens", "longest sample in positions (empty = no limit)", o => o.MaxTokens?.ToString(Inv) ?? "", (o, v) => o with { MaxTokens = Null(v) is null ? null : Int("data.max_tokens", v) }),
        S("data.max_audio_seconds", "longest audio clip in seconds, read from its header before decoding (empty = no limit)", o => o.MaxAudioSeconds is { } m ? D(m) : "", (o, v) => o with { MaxAudioSeconds = Null(v) is null ? null : Dbl("data.max_audio_seconds", v) }),
        S("data.max_entry_bytes", "longest manifest entry (JSONL line or array element) in bytes; a longer one is skipped unread and reported", o => o.MaxEntryBytes.ToString(Inv), (o, v) => o with { MaxEntryBytes = EntryBytes(v) }),
        S("data.validation_fraction", "share of entries held out by the hash split", o => D(o.ValidationFraction), (o, v) => o with { ValidationFraction = Dbl("data.validation_fraction", v) }),
        S("data.collator_preset", "collator preset: model or seed", o => o.CollatorPreset, (o, v) => o with { CollatorPreset = v }),
        S("model.base_checkpoint", "Higgs checkpoint folder (config.json + safetensors)", o => o.BaseModelDir, (o, v) => o with { BaseModelDir = v }),
        S("model.device", "cpu, cuda or cuda:N", o => o.Device, (o, v) => o with { Device = v }),
        S("model.hub_id", "Hugging Face id of the base (owner/name), written to adapter_config.json as base_model_name_or_path (else the local folder)", o => o.HubId ?? "", (o, v) => o with { HubId = Null(v) }),
        S("model.revision", "Hugging Face revision (commit or branch) of the base, written to adapter_config.json; needs model.hub_id", o => o.Revision ?? "", (o, v) => o with { Revision = Null(v) }),
        S("model.dtype", "base weights: auto (bf16 on CUDA, fp32 on CPU), bf16 or fp32; LoRA, AdamW and the loss stay fp32", o => o.DType, (o, v) => o with { DType = v.Trim() }),
        S("lora.r", "LoRA rank", o => o.LoraR.ToString(Inv), (o, v) => o with { LoraR = Int("lora.r", v) }),
        S("lora.alpha", "LoRA alpha", o => D(o.LoraAlpha), (o, v) => o with { LoraAlpha = Dbl("lora.alpha", v) }),
        S("lora.dropout", "LoRA dropout", o => D(o.LoraDropout), (o, v) => o with { LoraDropout = Dbl("lora.dropout", v) }),
        S("lora.targets", "module names (comma list)", o => string.Join(",", o.LoraTargets), (o, v) => o with { LoraTargets = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }),
        S("train.output_dir", "run folder", o => o.OutputDir, (o, v) => o with { OutputDir = v }),
        S("train.batch_size", "samples per micro-batch", o => o.BatchSize.ToString(Inv), (o, v) => o with { BatchSize = Int("train.batch_size", v) }),
        S("train.grad_accumulation", "micro-batches per optimizer step", o => o.GradAccumulation.ToString(Inv), (o, v) => o with { GradAccumulation = Int("train.grad_accumulation", v) }),
        S("train.ranks", "plan ranks: global batch = batch_size × grad_accumulation × ranks; cluster workers share them", o => o.Ranks.ToString(Inv), (o, v) => o with { Ranks = Int("train.ranks", v) }),
        S("train.devices", "GPUs of this machine for `higgs train`: all, a count or a list like 0,3,5 (one worker process each; empty = in-process workers)", o => o.Devices ?? "", (o, v) => o with { Devices = Null(v) }),
        S("train.gradient_checkpointing", "recompute each decoder layer in backward instead of keeping its activations", o => B(o.GradientCheckpointing), (o, v) => o with { GradientCheckpointing = Bool("train.gradient_checkpointing", v) }),
        S("train.epochs", "epochs (fractions allowed)", o => D(o.Epochs), (o, v) => o with { Epochs = Dbl("train.epochs", v) }),
        S("train.max_steps", "optimizer steps; > 0 overrides epochs", o => o.MaxSteps.ToString(Inv), (o, v) => o with { MaxSteps = Long("train.max_steps", v) }),
        S("train.lr", "peak learning rate", o => D(o.Lr), (o, v) => o with { Lr = Dbl("train.lr", v) }),
        S("train.warmup_steps", "linear warmup steps", o => o.WarmupSteps.ToString(Inv), (o, v) => o with { WarmupSteps = Int("train.warmup_steps", v) }),
        S("train.schedule", "cosine, linear or constant", o => o.Schedule.ToString().ToLowerInvariant(), (o, v) => o with { Schedule = Enum<ScheduleKind>("train.schedule", v) }),
        S("train.weight_decay", "AdamW weight decay", o => D(o.WeightDecay), (o, v) => o with { WeightDecay = Dbl("train.weight_decay", v) }),
        S("train.beta1", "AdamW beta1", o => D(o.Beta1), (o, v) => o with { Beta1 = Dbl("train.beta1", v) }),
        S("train.beta2", "AdamW beta2", o => D(o.Beta2), (o, v) => o with { Beta2 = Dbl("train.beta2", v) }),
        S("train.eps", "AdamW eps", o => D(o.Eps), (o, v) => o with { Eps = Dbl("train.eps", v) }),
        S("train.max_grad_norm", "gradient clipping norm (0 = off)", o => D(o.MaxGradNorm), (o, v) => o with { MaxGradNorm = Dbl("train.max_grad_norm", v) }),
        S("train.seed", "seed of shuffling, split, LoRA init and dropout", o => o.Seed.ToString(Inv), (o, v) => o with { Seed = Long("train.seed", v) }),
        S("train.loss_normalisation", "mean (HF) or tokens (torchtune)", o => o.LossNormalisation.ToString().ToLowerInvariant(), (o, v) => o with { LossNormalisation = Enum<LossNormalisation>("train.loss_normalisation", v) }),
        S("train.nan_patience", "abort after this many non-finite steps in a row", o => o.NanPatience.ToString(Inv), (o, v) => o with { NanPatience = Int("train.nan_patience", v) }),
        S("train.text_loss_weight", "weight of the text loss", o => D(o.TextLossWeight), (o, v) => o with { TextLossWeight = Dbl("train.text_loss_weight", v) }),
        S("train.audio_loss_weight", "weight of the audio loss", o => D(o.AudioLossWeight), (o, v) => o with { AudioLossWeight = Dbl("train.audio_loss_weight", v) }),
        S("eval.val_steps", "validate every N steps (0 = only at the end)", o => o.ValSteps.ToString(Inv), (o, v) => o with { ValSteps = Int("eval.val_steps", v) }),
        S("eval.early_stopping_patience", "stop after N validations without improvement (0 = off)", o => o.EarlyStoppingPatience.ToString(Inv), (o, v) => o with { EarlyStoppingPatience = Int("eval.early_stopping_patience", v) }),
        S("eval.samples", "audio samples at every validation: the first N validation entries spoken by the current weights (0 = off)", o => o.Samples.ToString(Inv), (o, v) => o with { Samples = Int("eval.samples", v) }),
        S("eval.sample_texts", "texts to speak at every validation instead of validation entries (a YAML list; one per line here)", o => string.Join("\n", o.SampleTexts), (o, v) => o with { SampleTexts = v.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }),
        S("eval.sample_max_seconds", "longest audio sample, in seconds", o => D(o.SampleMaxSeconds), (o, v) => o with { SampleMaxSeconds = Dbl("eval.sample_max_seconds", v) }),
        S("checkpoint.save_steps", "checkpoint every N steps (0 = only at the end)", o => o.SaveSteps.ToString(Inv), (o, v) => o with { SaveSteps = Int("checkpoint.save_steps", v) }),
        S("checkpoint.keep_last", "checkpoints kept besides the best", o => o.KeepLast.ToString(Inv), (o, v) => o with { KeepLast = Int("checkpoint.keep_last", v) }),
        S("log.log_steps", "print a line every N steps", o => o.LogSteps.ToString(Inv), (o, v) => o with { LogSteps = Int("log.log_steps", v) }),
        S("log.tensorboard", "write tfevents files", o => B(o.TensorBoard), (o, v) => o with { TensorBoard = Bool("log.tensorboard", v) }),
        S("log.plots", "write PNG loss plots", o => B(o.Plots), (o, v) => o with { Plots = Bool("log.plots", v) }),
        S("log.progress", "auto, on or off (live progress bar)", o => o.Progress, (o, v) => o with { Progress = v }),
    };

    private static readonly Dictionary<string, Key> ByName = All.ToDictionary(k => k.Name, StringComparer.Ordinal);

    public static Key? Find(string name) => ByName.GetValueOrDefault(name);

    /// <summary>The values as text, key → text, in table order (resolved_config.yaml's lines).</summary>
    public static IReadOnlyList<KeyValuePair<string, string>> Resolved(RunOptions o) =>
        All.Select(k => new KeyValuePair<string, string>(k.Name, k.Get(o))).ToList();

    /// <summary>Options from resolved values over the defaults; an unknown key or a malformed value is an error naming the key.</summary>
    public static RunOptions FromResolved(IEnumerable<KeyValuePair<string, string>> values)
    {
        var o = new RunOptions();
        foreach (var (key, value) in values)
            o = (Find(key) ?? throw new TrainConfigException(key, "unknown key")).Set(o, value);
        return o;
    }

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static Key S(string n, string h, Func<RunOptions, string> g, Func<RunOptions, string, RunOptions> s) => new(n, h, g, s);

    private static string? Null(string v) => string.IsNullOrWhiteSpace(v) ? null : v;
    public static string D(double v) => v.ToString("R", Inv);
    private static string B(bool v) => v ? "true" : "false";

    private static IReadOnlyList<Corpus> Corpora(string key, string v)
    {
        try { return DataMix.Parse(v); }
        catch (FormatException e) when (e.Message.StartsWith('[') && e.Message.IndexOf(' ') is > 0 and var sp)
        {
            throw new TrainConfigException(key + e.Message[..sp], e.Message[(sp + 1)..]); // names the item: data.manifests[1].weight
        }
        catch (FormatException e) { throw new TrainConfigException(key, e.Message); }
    }

    public static string EntryBytesRange(int got) =>
        $"must be {RunOptions.MinMaxEntryBytes}..{RunOptions.MaxMaxEntryBytes} bytes, got {got}";

    /// <summary>Checked when set: `data validate --config` reads the key without validating the whole config.</summary>
    private static int EntryBytes(string v) => Int("data.max_entry_bytes", v) is var b && b is >= RunOptions.MinMaxEntryBytes and <= RunOptions.MaxMaxEntryBytes
        ? b : throw new TrainConfigException("data.max_entry_bytes", EntryBytesRange(b));

    private static int Int(string key, string v) =>
        int.TryParse(v.Trim(), NumberStyles.Integer, Inv, out var i) ? i : throw new TrainConfigException(key, $"must be an integer, got '{v}'");

    private static long Long(string key, string v) =>
        long.TryParse(v.Trim(), NumberStyles.Integer, Inv, out var i) ? i : throw new TrainConfigException(key, $"must be an integer, got '{v}'");

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
