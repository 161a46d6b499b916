using System.Diagnostics;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

public sealed record DryRunResult(int Samples, long Positions, double StepSeconds, long PeakRssBytes, long RssBeforeBytes, double Loss);

/// <summary>
/// One forward + backward on the longest micro-batch the run can meet (the batch_size longest samples) before training
/// starts: if it fits and how long it takes. Parameters, moments and the RNG are left as they were.
/// </summary>
public static class DryRun
{
    public static DryRunResult Run(TrainingSession s)
    {
        var ids = s.TrainIds.OrderByDescending(id => s.Store.Get(id).Positions).ThenBy(id => id).Take(s.Options.BatchSize).ToList();
        var rng = TrainerCheckpoint.CaptureRng();
        long before = Rss("VmRSS");
        var clock = Stopwatch.StartNew();
        GradientResult g;
        using (var scope = NewDisposeScope())
        {
            var batch = s.Store.Collate(ids);
            g = s.Engine.ComputeGradients(new[] { batch });
            s.Engine.Optimizer.ZeroGrad();
        }
        double secs = clock.Elapsed.TotalSeconds;
        TrainerCheckpoint.RestoreRng(rng);
        return new DryRunResult(ids.Count, g.Positions, secs, Rss("VmHWM"), before, g.Loss);
    }

    /// <summary>A /proc/self/status field in bytes (0 where there is no procfs).</summary>
    public static long Rss(string field)
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                    return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0]) * 1024;
        }
        catch (IOException) { }
        return 0;
    }
}
