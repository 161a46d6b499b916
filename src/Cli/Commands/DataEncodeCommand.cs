using HiggsCluster.Cli.Grammar;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Data;
using Spectre.Console;

namespace HiggsCluster.Cli.Commands;

/// <summary>`higgs data encode --manifest M --audio-tokenizer DIR [--cache DIR] [--data-root D]`: fill the code cache.</summary>
public static class DataEncodeCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var manifest = args.Get("manifest") ?? throw new CliUsageException("data encode needs --manifest FILE");
        var tokDir = args.Get("audio-tokenizer") ?? throw new CliUsageException("data encode needs --audio-tokenizer DIR");
        if (!File.Exists(manifest)) throw new CliUsageException($"manifest not found: {manifest}");
        if (HiggsCluster.Training.Model.ModelFolders.Describe("the audio tokenizer folder", tokDir, HiggsCluster.Training.Model.ModelFolders.MissingInAudioTokenizer(tokDir)) is { } incomplete)
            throw new CliUsageException("--audio-tokenizer: " + incomplete);
        var cacheDir = args.Get("cache") ?? Path.Combine(Path.GetDirectoryName(Path.GetFullPath(manifest))!, "code-cache");
        HiggsCluster.Training.TorchRuntime.KeepFreedHostMemory(); // CPU encodes allocate and free tens of MB per op
        using var tokenizer = HiggsAudioTokenizer.Load(tokDir);
        var cache = new CodeCache(cacheDir, tokenizer);
        var source = new TokenizerCodeSource(tokenizer, cache);
        var options = new SampleBuilderOptions { DataRoot = args.Get("data-root"), KeepWhisperWaveforms = false };

        EncodeSummary summary;
        bool terminal = !Console.IsOutputRedirected && Environment.GetEnvironmentVariable("CI") is null && ReferenceEquals(stdout, Console.Out);
        if (terminal)
        {
            summary = null!;
            AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
                .Start(ctx =>
                {
                    var task = ctx.AddTask("encoding", maxValue: 1);
                    summary = ManifestEncoder.EncodeAll(manifest, source, options, (done, total) =>
                    {
                        task.MaxValue = Math.Max(1, total);
                        task.Value = done;
                        task.Description = $"encoding {done}/{total} ({cache.Hits} cached, {cache.Misses} encoded)";
                    });
                });
        }
        else
        {
            long lastTenth = -1;
            summary = ManifestEncoder.EncodeAll(manifest, source, options, (done, total) =>
            {
                long tenth = total == 0 ? 10 : done * 10 / total;
                if (tenth != lastTenth) { stdout.WriteLine($"encoding: {done}/{total} entries"); lastTenth = tenth; }
            });
        }
        stdout.WriteLine($"encoded {summary.Entries} entries, {summary.Audios} audios into {cacheDir}: {cache.Misses} encoded, {cache.Hits} already cached");
        foreach (var e in summary.Errors) stdout.WriteLine("  " + e);
        return summary.Errors.Count == 0 ? 0 : 1;
    }
}
