using HiggsCluster.Cli.Grammar;
using HiggsCluster.Training.Engine;
using HiggsCluster.Planning;

namespace HiggsCluster.Cli.Commands;

/// <summary>`higgs train --config f.yaml [--key=value …] [--resume latest|DIR] [--dry-run] [--workers N | --engine | --gpus all|N|0,3,5]`.</summary>
public static class TrainCommand
{
    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Flag("help-keys"))
        {
            foreach (var k in TrainOptions.Keys) stdout.WriteLine(HelpLine(k.Name, k.Help, k.Get(new TrainOptions())));
            return 0;
        }
        // every --key=value the grammar did not match is a config key: the config layer refuses one it does not know
        var overrides = args.Overrides;
        TrainOptions options;
        try
        {
            options = TrainConfig.Load(args.Get("config"), overrides, TrainConfig.ProcessEnvironment());
            options.Validate();
        }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        if ((args.Get("gpus") ?? options.Devices) is { } selection)
        {
            if (args.Flag("engine") || args.Get("workers") is not null)
                throw new CliUsageException("--gpus starts one worker process per GPU: it does not combine with --engine or --workers");
            var (gpus, device) = GpuTrain.Choose(selection, options, Training.Cuda.TorchDevices.BuildBackend);
            options.Device = device;
            options.Devices = null;
            return GpuTrain.Execute(options, gpus, args.Get("resume"), args.Flag("dry-run"), stdout, stderr);
        }
        try { Training.Cuda.TorchDevices.Resolve(options.Device); }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        if (!args.Flag("engine") && SharedGpuRefusal(options, args.Get("workers")) is { } why) throw new CliUsageException(why);
        int? workers = args.Flag("engine") ? null
            : args.Get("workers") is { } w ? (int.TryParse(w, out var n) ? n : throw new CliUsageException("--workers must be an integer")) : options.Ranks;
        return Execute(options, args.Get("resume"), args.Flag("dry-run"), stdout, stderr, clusterWorkers: workers);
    }

    /// <summary>
    /// Opens the run (data checked, warnings shown), makes the dry run, then trains: on the cluster's actors in this
    /// process with <paramref name="clusterWorkers"/> workers (the default of `higgs train`), or with the engine's own
    /// loop when it is null (`--engine`). Both give the same adapter for the same configuration.
    /// </summary>
    public static int Execute(TrainOptions options, string? resume, bool dryRunOnly, TextWriter stdout, TextWriter stderr,
        bool dryRunFirst = true, int? clusterWorkers = null)
    {
        // the cluster's workers in this process copy the base the session read: it is read from disk once
        using var bases = clusterWorkers is null ? null : new BaseModels();
        TrainingSession session;
        try { session = TrainingSession.Open(options, stdout, bases: bases); }
        catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
        TrainingOutcome r;
        var progress = SpectreProgress.For(options.Progress, stdout, options.LogSteps);
        using (session)
        {
            foreach (var line in WarningLines(session.Warnings)) stderr.WriteLine(line);
            stdout.WriteLine($"model: {session.Adapter.ModulePaths.Count} LoRA modules, {session.Adapter.NamedParameters().Sum(p => p.Param.numel())} trainable parameters; " +
                             $"{session.Plan.TotalSteps} steps ({session.Plan.StepsPerEpoch} per epoch)");
            if (dryRunFirst || dryRunOnly)
            {
                var d = DryRun.Run(session);
                DryRunReport.Write(d, session, stdout);
                if (dryRunOnly) return 0;
            }
            if (clusterWorkers is null)
            {
                var run = new TrainingRun(session, progress) { ResumeFrom = resume };
                try { r = run.Run(); }
                catch (TrainConfigException e) { throw new CliUsageException(e.Message); }
                // a checkpoint refused on load (NaN/Inf state, mismatched keys): one line and exit 2, as the cluster path does
                catch (InvalidDataException e) when (resume is not null) { throw new CliUsageException($"--resume: {e.Message}"); }
                catch (TrainingDivergedException e) { stderr.WriteLine("higgs: training diverged: " + e.Message); return 1; }
                return Report(r, stdout);
            }
        }
        int workers = clusterWorkers.Value;
        if (workers > options.Ranks)
            stderr.WriteLine($"warning: {workers} workers for {options.Ranks} plan rank(s) (train.ranks): {workers - options.Ranks} will be idle");
        stdout.WriteLine($"train: on the cluster's actors in this process: coordinator, a loader and {workers} worker(s) ({options.Ranks} plan rank(s))");
        try { r = Node.InProcessCluster.Train(options, workers, progress, resume, bases: bases); }
        catch (Node.ClusterRunFailedException e) { stderr.WriteLine("higgs: " + e.Message); return 1; }
        // InvalidDataException (a refused checkpoint) is not an IOException: named on its own
        catch (Exception e) when (resume is not null && e is IOException or InvalidDataException) { throw new CliUsageException($"--resume: {e.Message}"); }
        return Report(r, stdout);
    }

    /// <summary>Why in-process workers would share one GPU (null when they would not): several workers of one process all land on cuda:0.</summary>
    public static string? SharedGpuRefusal(TrainOptions options, string? workersArg)
    {
        if (!Training.Cuda.TorchDevices.IsCuda(options.Device)) return null;
        if (workersArg is not null ? workersArg == "1" : options.Ranks <= 1) return null;
        return $"{(workersArg is not null ? $"--workers {workersArg}" : $"train.ranks: {options.Ranks}")} would start that many workers in this process, " +
               "all on one GPU: use --gpus all (one worker process per GPU), or --workers 1";
    }

    internal static int Report(TrainingOutcome r, TextWriter stdout)
    {
        stdout.WriteLine($"train: {r.StepsRun} steps, loss {r.FirstLoss:0.0000} → {r.LastLoss:0.0000}" +
                         (r.Best is { } b ? $"; best validation {b.Loss:0.0000} at step {b.Step}" : "") + (r.EarlyStopped ? " (early stop)" : ""));
        stdout.WriteLine($"  adapter:    {r.AdapterDir}");
        stdout.WriteLine($"  checkpoint: {r.LastCheckpoint}");
        stdout.WriteLine($"  metrics:    {r.MetricsPath}");
        stdout.WriteLine($"  plots:      {string.Join(", ", r.Plots)}");
        stdout.WriteLine($"  report:     {r.ReportPath}");
        return 0;
    }

    /// <summary>One key of --help-keys; a key whose help already names its default (one computed at run time) is not given a second.</summary>
    public static string HelpLine(string name, string help, string value) =>
        $"  {name,-32} {help}" + (help.Contains("(default ", StringComparison.Ordinal) ? "" : $" (default {(value.Length == 0 ? "none" : value)})");

    /// <summary>The first warnings, then how many more there are: a manifest with thousands of bad rows does not flood the terminal.</summary>
    public static IEnumerable<string> WarningLines(IReadOnlyList<string> warnings, int shown = 20) =>
        warnings.Take(shown).Select(w => "warning: " + w)
            .Concat(warnings.Count > shown ? new[] { $"warning: … and {warnings.Count - shown} more (all in report.md)" } : Array.Empty<string>());
}
