using HiggsCluster.Training.Engine;

namespace HiggsCluster.Cli.Commands;

/// <summary>`higgs train --config f.yaml [--key=value …] [--resume latest|DIR] [--dry-run]`.</summary>
public static class TrainCommand
{
    private static readonly HashSet<string> Own = new(StringComparer.Ordinal) { "config", "resume", "dry-run", "help-keys", "workers" };

    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Flag("help-keys"))
        {
            foreach (var k in TrainOptions.Keys) stdout.WriteLine($"  {k.Name,-32} {k.Help} (default {Show(k.Get(new TrainOptions()))})");
            return 0;
        }
        if (args.Positional.Count > 0) throw new CliUsageException($"train takes no positional arguments, got '{args.Positional[0]}' (use --key=value)");
        var overrides = args.Keys.Where(k => !Own.Contains(k)).Select(k => new KeyValuePair<string, string>(k, args.Get(k)!)).ToList();
        TrainOptions options;
        try
        {
            options = TrainConfig.Load(args.Get("config"), overrides, TrainConfig.ProcessEnvironment());
            options.Validate();
        }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        if (args.Get("workers") is { } w) return ExecuteOnCluster(options, int.TryParse(w, out var n) ? n : throw new CliUsageException("--workers must be an integer"), stdout, stderr);
        return Execute(options, args.Get("resume"), args.Flag("dry-run"), stdout, stderr);
    }

    /// <summary>The same run on the cluster's actors in this process (coordinator, a loader, N workers).</summary>
    public static int ExecuteOnCluster(TrainOptions options, int workers, TextWriter stdout, TextWriter stderr)
    {
        if (workers > options.Ranks)
            stderr.WriteLine($"warning: {workers} workers for {options.Ranks} plan rank(s) (train.ranks): {workers - options.Ranks} will be idle");
        var st = Node.InProcessCluster.Train(options, workers, stdout);
        if (st.Phase != Messages.RunPhase.Completed)
        {
            stderr.WriteLine($"higgs: run {st.Phase}: {st.Detail}");
            return 1;
        }
        stdout.WriteLine($"train: {st.CommittedSteps} steps on {workers} worker(s)");
        stdout.WriteLine($"  adapter:    {Path.Combine(Path.GetFullPath(options.OutputDir), "adapter")}");
        stdout.WriteLine($"  metrics:    {Path.Combine(Path.GetFullPath(options.OutputDir), "metrics.jsonl")}");
        return 0;
    }

    public static int Execute(TrainOptions options, string? resume, bool dryRunOnly, TextWriter stdout, TextWriter stderr, bool dryRunFirst = true)
    {
        TrainingSession session;
        try { session = TrainingSession.Open(options, stdout); }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        using var _ = session;
        foreach (var w in session.Warnings.Take(20)) stderr.WriteLine("warning: " + w);
        stdout.WriteLine($"model: {session.Adapter.ModulePaths.Count} LoRA modules, {session.Adapter.NamedParameters().Sum(p => p.Param.numel())} trainable parameters; " +
                         $"{session.Plan.TotalSteps} steps ({session.Plan.StepsPerEpoch} per epoch)");
        if (dryRunFirst || dryRunOnly)
        {
            var d = DryRun.Run(session);
            stdout.WriteLine($"dry run: longest batch ({d.Samples} samples, {d.Positions} positions) forward+backward {d.StepSeconds:0.000} s, " +
                             $"peak RSS {d.PeakRssBytes / 1048576.0:0} MiB (before {d.RssBeforeBytes / 1048576.0:0} MiB), loss {d.Loss:0.0000}");
            if (dryRunOnly) return 0;
        }
        var run = new TrainingRun(session, SpectreProgress.For(options.Progress, stdout, options.LogSteps)) { ResumeFrom = resume };
        TrainingOutcome r;
        try { r = run.Run(); }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        catch (TrainingDivergedException e) { stderr.WriteLine("higgs: training diverged: " + e.Message); return 1; }
        stdout.WriteLine($"train: {r.StepsRun} steps, loss {r.FirstLoss:0.0000} → {r.LastLoss:0.0000}" +
                         (r.Best is { } b ? $"; best validation {b.Loss:0.0000} at step {b.Step}" : "") + (r.EarlyStopped ? " (early stop)" : ""));
        stdout.WriteLine($"  adapter:    {r.AdapterDir}");
        stdout.WriteLine($"  checkpoint: {r.LastCheckpoint}");
        stdout.WriteLine($"  metrics:    {r.MetricsPath}");
        stdout.WriteLine($"  plots:      {string.Join(", ", r.Plots)}");
        stdout.WriteLine($"  report:     {r.ReportPath}");
        return 0;
    }

    private static string Show(string v) => v.Length == 0 ? "none" : v;
}
