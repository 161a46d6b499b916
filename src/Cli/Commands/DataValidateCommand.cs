using HiggsCluster.Cli.Grammar;
using HiggsCluster.Planning;
using HiggsCluster.Training.Data;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Cli.Commands;

/// <summary>
/// `higgs data validate --manifest M [--manifest M2 ...] --tokenizer T [--max-tokens N] [--data-root D]`, or
/// `higgs data validate --config train.yaml` (the run's corpora, tokenizer, length limit and data roots): one
/// consolidated report, each corpus counted on its own when there are several. `--base DIR` and `--audio-tokenizer DIR`
/// also check that those folders are complete (a half-finished download is named here, not deep in loading).
/// </summary>
public static class DataValidateCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        IReadOnlyList<Corpus> corpora;
        bool weighted;
        int maxEntryBytes = ManifestReader.DefaultMaxEntryBytes;
        DelayColumns delay;
        string? tokenizerPath = args.Get("tokenizer");
        var options = new SampleBuilderOptions
        {
            MaxTokens = args.Get("max-tokens") is null ? null : args.Int("max-tokens", 0),
            DataRoot = args.Get("data-root"),
        };
        if (args.Get("config") is { } config)
        {
            if (args.All("manifest").Count > 0) throw new CliUsageException("data validate takes --config or --manifest, not both");
            TrainOptions o;
            try { o = TrainConfig.Load(config, Array.Empty<KeyValuePair<string, string>>()); }
            catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
            corpora = o.Corpora(); weighted = o.Manifests.Count > 0;
            tokenizerPath ??= o.TextTokenizer;
            options = options with { MaxTokens = options.MaxTokens ?? o.MaxTokens, DataRoot = options.DataRoot ?? o.DataRoot, MaxAudioSeconds = o.MaxAudioSeconds };
            maxEntryBytes = o.MaxEntryBytes;
            delay = DelayColumns.Of(args.Get("base") ?? o.BaseModelDir, o.CollatorPreset);
        }
        else
        {
            var manifests = args.All("manifest");
            if (manifests.Count == 0) throw new CliUsageException("data validate needs --manifest FILE (or --config f.yaml)");
            corpora = manifests.Select(m => new Corpus(m, 1)).ToArray(); weighted = false;
            delay = DelayColumns.Of(args.Get("base"));
        }
        // the length is estimated as training computes it: the delay pattern adds codebooks - 1 columns per audio
        options = options with { DelayColumns = delay.PerAudio };
        stdout.WriteLine("note: " + delay.Describe());
        if (string.IsNullOrWhiteSpace(tokenizerPath)) throw new CliUsageException("data validate needs --tokenizer tokenizer.json");
        if (!File.Exists(tokenizerPath)) throw new CliUsageException($"--tokenizer: file not found: {tokenizerPath} ({HiggsCluster.Training.Model.ModelFolders.Download})");
        bool complete = true;
        foreach (var (flag, what, missing) in new[]
        {
            ("base", "the base model folder", args.Get("base") is { } b ? HiggsCluster.Training.Model.ModelFolders.MissingInBase(b) : null),
            ("audio-tokenizer", "the audio tokenizer folder", args.Get("audio-tokenizer") is { } a ? HiggsCluster.Training.Model.ModelFolders.MissingInAudioTokenizer(a) : null),
        })
            if (missing is { Count: > 0 }) { stdout.WriteLine($"error: --{flag}: " + HiggsCluster.Training.Model.ModelFolders.Describe(what, args.Get(flag)!, missing)); complete = false; }
        for (int i = 0; i < corpora.Count; i++)
            if (!File.Exists(corpora[i].Path)) throw new CliUsageException($"manifest not found: {corpora[i].Path}" + (weighted ? $" (data.manifests[{i}].path)" : ""));
        var tokenizer = TextTokenizer.Load(tokenizerPath);
        var check = TokenizerConfigCheck.Check(tokenizerPath, tokenizer);
        foreach (var e in check.Errors) stdout.WriteLine("error: " + e);
        foreach (var n in check.Notes) stdout.WriteLine("note: " + n);
        var report = corpora.Count == 1 && !weighted
            ? DataValidator.Validate(corpora[0].Path, tokenizer, options with { DataRoot = corpora[0].DataRoot ?? options.DataRoot }, maxEntryBytes: maxEntryBytes)
            : DataValidator.ValidateCorpora(corpora, weighted, tokenizer, options, maxEntryBytes: maxEntryBytes);
        stdout.Write(report.Render());
        return report.Ok && complete && check.Errors.Count == 0 ? 0 : 1;
    }
}
