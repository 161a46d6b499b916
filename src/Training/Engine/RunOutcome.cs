using HiggsCluster.Training.Engine.Observability;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// The end of a run, the same for the engine loop and the in-process cluster: plots and report.md from the run's
/// history, the first and last loss, and the <see cref="TrainingOutcome"/> the CLI reports.
/// </summary>
public static class RunOutcome
{
    public static TrainingOutcome Finish(TrainOptions o, RunFacts facts, IReadOnlyList<StepMetrics> history, IReadOnlyList<ValidationResult> vals,
        ValidationResult? best, TimeSpan wall, string? lastCheckpoint, bool earlyStopped, long stepsRun, long nextStep, IReadOnlyList<long> consumed)
    {
        var outDir = Path.GetFullPath(o.OutputDir);
        var adapterDir = Path.Combine(outDir, "adapter");
        var plots = o.Plots ? RunHistory.WritePlots(outDir, history, vals) : new List<string>();
        var (first, last) = RunHistory.FirstAndLastLoss(history);
        var report = RunReport.Write(Path.Combine(outDir, "report.md"), o, facts, history, vals, best, wall, adapterDir, plots, lastCheckpoint,
            earlyStopped, first, last);
        return new TrainingOutcome(outDir, adapterDir, Path.Combine(outDir, "metrics.jsonl"), report, plots, stepsRun, nextStep, first, last,
            best, vals.LastOrDefault(), consumed, earlyStopped, lastCheckpoint);
    }
}
