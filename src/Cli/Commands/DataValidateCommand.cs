using HiggsCluster.Training.Data;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Cli.Commands;

/// <summary>`higgs data validate --manifest M --tokenizer T [--max-tokens N] [--data-root D] [--base DIR] [--audio-tokenizer DIR]`: one consolidated report.</summary>
public static class DataValidateCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var manifest = args.Get("manifest") ?? throw new CliUsageException("data validate needs --manifest FILE");
        var tokenizerPath = args.Get("tokenizer") ?? throw new CliUsageException("data validate needs --tokenizer tokenizer.json");
        if (!File.Exists(manifest)) throw new CliUsageException($"manifest not found: {manifest}");
        if (!File.Exists(tokenizerPath)) throw new CliUsageException($"--tokenizer: file not found: {tokenizerPath} ({HiggsCluster.Training.Model.ModelFolders.Download})");
        // optional folders to check before a run: a half-finished download is named here, not deep in loading
        bool complete = true;
        foreach (var (flag, what, missing) in new[]
        {
            ("base", "the base model folder", args.Get("base") is { } b ? HiggsCluster.Training.Model.ModelFolders.MissingInBase(b) : null),
            ("audio-tokenizer", "the audio tokenizer folder", args.Get("audio-tokenizer") is { } a ? HiggsCluster.Training.Model.ModelFolders.MissingInAudioTokenizer(a) : null),
        })
            if (missing is { Count: > 0 }) { stdout.WriteLine($"error: --{flag}: " + HiggsCluster.Training.Model.ModelFolders.Describe(what, args.Get(flag)!, missing)); complete = false; }
        var tokenizer = TextTokenizer.Load(tokenizerPath);
        var check = TokenizerConfigCheck.Check(tokenizerPath, tokenizer);
        foreach (var e in check.Errors) stdout.WriteLine("error: " + e);
        foreach (var n in check.Notes) stdout.WriteLine("note: " + n);
        var options = new SampleBuilderOptions
        {
            MaxTokens = args.Get("max-tokens") is null ? null : args.Int("max-tokens", 0),
            DataRoot = args.Get("data-root"),
        };
        var report = DataValidator.Validate(manifest, tokenizer, options);
        stdout.Write(report.Render());
        return report.Ok && complete && check.Errors.Count == 0 ? 0 : 1;
    }
}
