using HiggsCluster.Planning;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Model;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// The data side of a run, built from validated options the same way wherever it runs (single process, a cluster
/// loader, a worker that validates): tokenizers, the audio code source, the collator for the model's config, and
/// the manifest entries by sample id (entry index, corpus c of data.manifests from <see cref="DataMix.IdOf"/>(c, 0);
/// entries of a separate validation manifest start at <see cref="DataSplit.ValidationIdBase"/>). Entries that do not
/// parse are listed in <see cref="Warnings"/>.
/// </summary>
public sealed class RunData : IDisposable
{
    private readonly HiggsAudioTokenizer? _audioTokenizer;

    public SampleStore Store { get; }
    public IReadOnlyList<long> ParsedTrainIds { get; }
    public IReadOnlyList<long> ParsedValidationIds { get; }
    public IReadOnlyList<string> Warnings { get; }

    private RunData(HiggsAudioTokenizer? t, SampleStore store, List<long> train, List<long> val, List<string> warnings)
    {
        _audioTokenizer = t; Store = store; ParsedTrainIds = train; ParsedValidationIds = val; Warnings = warnings;
    }

    public static RunData Open(TrainOptions o, HiggsAudioConfig cfg, IAudioCodeSource? codes = null, int capacity = int.MaxValue)
    {
        var warnings = new List<string>();
        var text = TextTokenizer.Load(o.TextTokenizer);
        var tokenizerCheck = TokenizerConfigCheck.Check(o.TextTokenizer, text);
        if (tokenizerCheck.Errors.Count > 0) throw new TrainConfigException("data.text_tokenizer", tokenizerCheck.Errors[0]);
        warnings.AddRange(tokenizerCheck.Notes);
        HiggsAudioTokenizer? tok = null;
        if (codes is null)
        {
            tok = HiggsAudioTokenizer.Load(o.AudioTokenizer);
            codes = new TokenizerCodeSource(tok, new CodeCache(o.CodeCache ?? Path.Combine(o.OutputDir, "code-cache"), tok));
        }
        if (codes.NumCodebooks < cfg.AudioNumCodebooks)
            throw new TrainConfigException("data.audio_tokenizer", $"gives {codes.NumCodebooks} codebooks, the model needs {cfg.AudioNumCodebooks}");
        var settings = new CollatorModelSettings(cfg.EncodeWhisperEmbed && cfg.BuildsAudioTower, cfg.EncodeAudioInTokens, cfg.UseDelayPattern,
            cfg.AudioNumCodebooks, cfg.AudioStreamBosId, cfg.AudioStreamEosId, cfg.AudioInTokenIdx, cfg.AudioOutTokenIdx, cfg.PadTokenId);
        var collatorOptions = CollatorPresets.Create(o.CollatorPreset, settings, w => warnings.Add(w));
        var collator = new HiggsAudioCollator(collatorOptions);
        SampleBuilder Builder(string? dataRoot) => new(text, codes, new SampleBuilderOptions
        {
            DataRoot = dataRoot, MaxTokens = o.MaxTokens, MaxAudioSeconds = o.MaxAudioSeconds, KeepWhisperWaveforms = collatorOptions.EncodeWhisperEmbed,
            DelayColumns = collatorOptions.UseDelayPattern ? cfg.AudioNumCodebooks - 1 : 0,
        });
        var corpora = o.Corpora();
        // audio is always confined: to a corpus's data_root, else the run's, else the folder of its own manifest
        var builders = corpora.Select(c => Builder(SampleBuilderOptions.RootFor(c.DataRoot ?? o.DataRoot, c.Path))).ToArray();
        var builder = builders[0];
        var validationBuilder = o.ValidationManifest is { } vmPath ? Builder(SampleBuilderOptions.RootFor(o.DataRoot, vmPath)) : builder;

        var entries = new Dictionary<long, ChatMLSample>();
        var train = new List<long>(); var val = new List<long>();
        void Read(string manifest, long idBase, List<long> into)
        {
            foreach (var item in ManifestReader.Read(manifest, o.MaxEntryBytes))
            {
                if (item.Error is { } e) { warnings.Add($"{manifest}: skipped: {e}"); continue; }
                entries[idBase + item.Index] = item.Sample!;
                into.Add(idBase + item.Index);
            }
        }
        for (int c = 0; c < corpora.Count; c++) Read(corpora[c].Path, DataMix.IdOf(c, 0), train);
        if (o.ValidationManifest is { } vm) Read(vm, DataSplit.ValidationIdBase, val);
        var store = new SampleStore(entries, builder, collator, capacity: (int)Math.Min(capacity, entries.Count + 1L),
            builderOf: corpora.Count == 1 && o.ValidationManifest is null ? null
                : id => DataMix.IsSeparateValidationId(id) ? validationBuilder : builders[DataMix.CorpusOf(id)]);
        return new RunData(tok, store, train, val, warnings);
    }

    /// <summary>The train/validation split of the parsed ids: the separate validation manifest, else the seeded hash split.</summary>
    public (List<long> Train, List<long> Validation) Split(TrainOptions o) => o.ValidationManifest is not null
        ? (ParsedTrainIds.ToList(), ParsedValidationIds.ToList())
        : DataSplit.Split(ParsedTrainIds, (ulong)o.Seed, o.ValidationFraction);

    /// <summary>The ids whose sample builds (audio found and encoded, within the length limit); the others become warnings.</summary>
    public List<long> Usable(IEnumerable<long> ids, List<string> warnings)
    {
        var ok = new List<long>();
        foreach (var id in ids)
        {
            try { Store.Get(id); ok.Add(id); }
            catch (SampleException e) { warnings.Add($"skipped: {e.Message}"); }
            catch (Exception e) when (SampleException.IsPerEntry(e)) { warnings.Add($"skipped: {SampleException.Wrap(id, "messages", e).Message}"); }
        }
        return ok;
    }

    public void Dispose()
    {
        Store.Collator.Dispose();
        _audioTokenizer?.Dispose();
    }
}
