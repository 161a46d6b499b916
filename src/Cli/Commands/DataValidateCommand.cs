using HiggsCluster.Training.Data;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Cli.Commands;

/// <summary>`higgs data validate --manifest M --tokenizer T [--max-tokens N] [--data-root D]`: one consolidated report.</summary>
public static class DataValidateCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var manifest = args.Get("manifest") ?? throw new CliUsageException("data validate needs --manifest FILE");
        var tokenizerPath = args.Get("tokenizer") ?? throw new CliUsageException("data validate needs --tokenizer tokenizer.json");
        if (!File.Exists(manifest)) throw new CliUsageException($"manifest not found: {manifest}");
        var tokenizer = TextTokenizer.Load(tokenizerPath);
        var options = new SampleBuilderOptions
        {
            MaxTokens = args.Get("max-tokens") is null ? null : args.Int("max-tokens", 0),
            DataRoot = args.Get("data-root"),
        };
        var report = DataValidator.Validate(manifest, tokenizer, options);
        stdout.Write(report.Render());
        return report.Ok ? 0 : 1;
    }
}
