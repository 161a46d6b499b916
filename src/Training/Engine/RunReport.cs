using System.Globalization;
using System.Text;
using HiggsCluster.Training.Engine.Observability;
using HiggsCluster.Planning;

namespace HiggsCluster.Training.Engine;

/// <summary>report.md: what was trained, on what, how the losses moved, where the files are.</summary>
/// <summary>What the report says about the model and data, from wherever the run was trained.</summary>
public sealed record RunFacts(int Layers, int Hidden, int Codebooks, int LoraModules, long TrainableParameters, int TrainSamples,
    int ValidationSamples, IReadOnlyList<string> Warnings, long TotalSteps, long StepsPerEpoch)
{
    /// <summary>The corpora of a mixed dataset (data.manifests); empty for one manifest.</summary>
    public IReadOnlyList<CorpusCount> Corpora { get; init; } = Array.Empty<CorpusCount>();

    public static RunFacts Of(TrainingSession s) => new(s.Model.Config.Text.NumHiddenLayers, s.Model.Config.Text.HiddenSize,
        s.Model.Config.AudioNumCodebooks, s.Adapter.ModulePaths.Count, s.Adapter.NamedParameters().Sum(p => p.Param.numel()),
        s.TrainIds.Count, s.ValidationIds.Count, s.Warnings, s.Plan.TotalSteps, s.Plan.StepsPerEpoch)
    {
        Corpora = CorpusCounts.Of(s.Options, s.TrainIds, s.ValidationIds, s.Plan),
    };
}

public static class RunReport
{
    public static string Write(string path, TrainOptions o, TrainingSession s, IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> vals,
        ValidationResult? best, TimeSpan wall, string adapterDir, IReadOnlyList<string> plots, string? checkpoint, bool earlyStopped, double firstLoss, double lastLoss) =>
        Write(path, o, RunFacts.Of(s), history, vals, best, wall, adapterDir, plots, checkpoint, earlyStopped, firstLoss, lastLoss);

    public static string Write(string path, TrainOptions o, RunFacts s, IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> vals,
        ValidationResult? best, TimeSpan wall, string adapterDir, IReadOnlyList<string> plots, string? checkpoint, bool earlyStopped, double firstLoss, double lastLoss)
    {
        string F(double v) => double.IsFinite(v) ? v.ToString("0.0000", CultureInfo.InvariantCulture) : "n/a";
        var sb = new StringBuilder();
        string Rel(string p) => Path.GetRelativePath(Path.GetDirectoryName(path)!, p);
        sb.AppendLine("# Training run report").AppendLine();
        sb.AppendLine($"- model: `{o.BaseModelDir}` ({s.Layers} layers, hidden {s.Hidden}, {s.Codebooks} codebooks)");
        sb.AppendLine($"- LoRA: r={o.LoraR}, alpha={o.LoraAlpha}, dropout={o.LoraDropout}, {s.LoraModules} modules, {s.TrainableParameters} trainable parameters");
        var source = s.Corpora.Count > 0 ? $"{s.Corpora.Count} corpora sampled by weight" : $"`{o.Manifest}`";
        sb.AppendLine($"- data: {s.TrainSamples} training / {s.ValidationSamples} validation samples from {source}" + (s.Warnings.Count > 0 ? $" ({s.Warnings.Count} warnings)" : ""));
        foreach (var line in CorpusCounts.Lines(s.Corpora)) sb.AppendLine("  - " + line);
        sb.AppendLine($"- steps: {history.Count} of {s.TotalSteps} (batch {o.BatchSize} × accumulation {o.GradAccumulation}; {s.StepsPerEpoch} steps per epoch)" + (earlyStopped ? ", stopped early" : ""));
        sb.AppendLine($"- optimizer: AdamW lr {o.Lr} ({o.Schedule.ToString().ToLowerInvariant()}, warmup {o.WarmupSteps}), betas {o.Beta1}/{o.Beta2}, weight decay {o.WeightDecay}, max grad norm {o.MaxGradNorm}; loss normalisation {o.LossNormalisation.ToString().ToLowerInvariant()}");
        int skipped = history.Count(h => h.Skipped);
        double tps = history.Where(h => !h.Skipped).Select(h => h.TokensPerSecond).DefaultIfEmpty(0).Average();
        sb.AppendLine($"- wall time {wall.TotalSeconds:0.0} s, mean {tps:0} tokens/s, {skipped} skipped steps").AppendLine();
        sb.AppendLine("## Losses").AppendLine();
        sb.AppendLine("| | loss | text | audio |").AppendLine("|---|---|---|---|");
        var ok = history.Where(h => !h.Skipped).ToList();
        if (ok.Count > 0)
        {
            var a = ok.Take(5).ToList(); var z = ok.Skip(Math.Max(0, ok.Count - 5)).ToList();
            sb.AppendLine($"| train, first {a.Count} steps | {F(a.Average(h => h.Loss))} | {F(a.Average(h => h.TextLoss))} | {F(a.Average(h => h.AudioLoss))} |");
            sb.AppendLine($"| train, last {z.Count} steps | {F(z.Average(h => h.Loss))} | {F(z.Average(h => h.TextLoss))} | {F(z.Average(h => h.AudioLoss))} |");
        }
        if (vals.Count > 0)
        {
            sb.AppendLine($"| validation, first (step {vals[0].Step}) | {F(vals[0].Loss)} | {F(vals[0].TextLoss)} | {F(vals[0].AudioLoss)} |");
            sb.AppendLine($"| validation, last (step {vals[^1].Step}) | {F(vals[^1].Loss)} | {F(vals[^1].TextLoss)} | {F(vals[^1].AudioLoss)} |");
        }
        if (best is not null) sb.AppendLine($"| validation, best (step {best.Step}) | {F(best.Loss)} | {F(best.TextLoss)} | {F(best.AudioLoss)} |");
        sb.AppendLine();
        if (vals.Count > 0)
        {
            sb.AppendLine("## Validation per codebook (last)").AppendLine();
            sb.AppendLine("| " + string.Join(" | ", vals[^1].CodebookLosses.Select((_, c) => $"cb{c}")) + " |");
            sb.AppendLine("|" + string.Concat(vals[^1].CodebookLosses.Select(_ => "---|")));
            sb.AppendLine("| " + string.Join(" | ", vals[^1].CodebookLosses.Select(F)) + " |").AppendLine();
        }
        var sampleRows = Generation.ValidationSamples.ReportRows(Path.GetDirectoryName(Path.GetFullPath(path))!).ToList();
        if (sampleRows.Count > 0)
        {
            sb.AppendLine("## Samples (what the weights said at each validation)").AppendLine();
            sb.AppendLine("| step | prompt | audio (24 kHz WAV) | spectrogram | size |");
            sb.AppendLine("|---|---|---|---|---|");
            foreach (var r in sampleRows) sb.AppendLine(r);
            sb.AppendLine();
        }
        sb.AppendLine("## Files").AppendLine();
        sb.AppendLine($"- adapter (PEFT): `{Rel(adapterDir)}/`");
        if (checkpoint is not null) sb.AppendLine($"- last checkpoint (resume with `--resume latest`): `{Rel(checkpoint)}/`");
        sb.AppendLine("- metrics: `metrics.jsonl`, TensorBoard: `tensorboard/`");
        foreach (var p in plots) sb.AppendLine($"- plot: `{Rel(p)}`");
        if (s.Warnings.Count > 0)
        {
            sb.AppendLine().AppendLine("## Warnings").AppendLine();
            foreach (var w in s.Warnings) sb.AppendLine($"- {w}");
        }
        File.WriteAllText(path, sb.ToString());
        return path;
    }
}
