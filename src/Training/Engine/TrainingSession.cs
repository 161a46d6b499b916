using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// Everything a run needs, built from validated options: tokenizers, samples (all built and checked up front, so
/// steps never stall on audio encoding and bad entries are reported before training), the model with LoRA, the split
/// and the plan. A test can pass its own <see cref="IAudioCodeSource"/>.
/// </summary>
public sealed class TrainingSession : IDisposable
{
    /// <summary>Ids of entries from a separate validation manifest start here.</summary>
    public const long ValidationIdBase = 1_000_000_000;

    private readonly HiggsAudioTokenizer? _audioTokenizer;

    public required TrainOptions Options { get; init; }
    public required HiggsAudioModel Model { get; init; }
    public required LoraAdapter Adapter { get; init; }
    public required SampleStore Store { get; init; }
    public required IReadOnlyList<long> TrainIds { get; init; }
    public required IReadOnlyList<long> ValidationIds { get; init; }
    public required SamplePlan Plan { get; init; }
    public required TrainingEngine Engine { get; init; }
    public required IReadOnlyList<string> Warnings { get; init; }
    public Device Device => Model.Device;

    private TrainingSession(HiggsAudioTokenizer? t) { _audioTokenizer = t; }

    public static TrainingSession Open(TrainOptions o, TextWriter log, IAudioCodeSource? codes = null)
    {
        o.Validate();
        var warnings = new List<string>();
        var device = o.Device == "cpu" ? CPU : new Device(o.Device);
        torch.manual_seed(o.Seed);
        var text = TextTokenizer.Load(o.TextTokenizer);
        HiggsAudioTokenizer? tok = null;
        if (codes is null)
        {
            tok = HiggsAudioTokenizer.Load(o.AudioTokenizer);
            codes = new TokenizerCodeSource(tok, new CodeCache(o.CodeCache ?? Path.Combine(o.OutputDir, "code-cache"), tok));
        }
        var model = Checkpoint.LoadModel(o.BaseCheckpoint, ScalarType.Float32, device);
        var cfg = model.Config;
        if (codes.NumCodebooks < cfg.AudioNumCodebooks)
            throw new TrainConfigException("data.audio_tokenizer", $"gives {codes.NumCodebooks} codebooks, the model needs {cfg.AudioNumCodebooks}");
        var settings = new CollatorModelSettings(cfg.EncodeWhisperEmbed && cfg.BuildsAudioTower, cfg.EncodeAudioInTokens, cfg.UseDelayPattern,
            cfg.AudioNumCodebooks, cfg.AudioStreamBosId, cfg.AudioStreamEosId, cfg.AudioInTokenIdx, cfg.AudioOutTokenIdx, cfg.PadTokenId);
        var collatorOptions = CollatorPresets.Create(o.CollatorPreset, settings, w => warnings.Add(w));
        var collator = new HiggsAudioCollator(collatorOptions);
        var builder = new SampleBuilder(text, codes, new SampleBuilderOptions
        {
            DataRoot = o.DataRoot, MaxTokens = o.MaxTokens, KeepWhisperWaveforms = collatorOptions.EncodeWhisperEmbed,
        });

        var entries = new Dictionary<long, ChatMLSample>();
        var ids = new List<long>(); var valIds = new List<long>();
        void Read(string manifest, long idBase, List<long> into)
        {
            foreach (var item in ManifestReader.Read(manifest))
            {
                if (item.Error is { } e) { warnings.Add($"{manifest}: skipped: {e}"); continue; }
                entries[idBase + item.Index] = item.Sample!;
                into.Add(idBase + item.Index);
            }
        }
        Read(o.Manifest, 0, ids);
        List<long> train, val;
        if (o.ValidationManifest is { } vm) { Read(vm, ValidationIdBase, valIds); train = ids; val = valIds; }
        else (train, val) = DataSplit.Split(ids, (ulong)o.Seed, o.ValidationFraction);

        var store = new SampleStore(entries, builder, collator, capacity: entries.Count + 1);
        List<long> Usable(List<long> list)
        {
            var ok = new List<long>();
            foreach (var id in list)
            {
                try { store.Get(id); ok.Add(id); }
                catch (SampleException e) { warnings.Add($"skipped: {e.Message}"); }
            }
            return ok;
        }
        train = Usable(train); val = Usable(val);
        if (train.Count == 0) throw new TrainConfigException("data.manifest", "no usable training sample (see the warnings)");
        log.WriteLine($"data: {train.Count} training and {val.Count} validation samples" + (warnings.Count > 0 ? $", {warnings.Count} warnings" : ""));

        var lora = o.ToLoraConfig();
        var adapter = LoraAdapter.Attach(model, lora, ScalarType.Float32, new Generator((ulong)o.Seed));
        var plan = new SamplePlan(train, (ulong)o.Seed, o.BatchSize, o.GradAccumulation, 1, o.Epochs, o.MaxSteps > 0 ? o.MaxSteps : null);
        var engine = TrainingEngine.Create(model, adapter, o, plan.TotalSteps);
        return new TrainingSession(tok)
        {
            Options = o, Model = model, Adapter = adapter, Store = store, TrainIds = train, ValidationIds = val,
            Plan = plan, Engine = engine, Warnings = warnings,
        };
    }

    public void Dispose()
    {
        Store.Collator.Dispose();
        _audioTokenizer?.Dispose();
    }
}
