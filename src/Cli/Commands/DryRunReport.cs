using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Memory;

namespace HiggsCluster.Cli.Commands;

/// <summary>What the dry run found, and the stop before training when the longest batch does not fit the GPU.</summary>
public static class DryRunReport
{
    public static void Write(DryRunResult d, TrainingSession session, TextWriter stdout)
    {
        stdout.WriteLine($"dry run: longest batch ({d.Samples} samples, {d.Positions} positions) forward+backward {d.StepSeconds:0.000} s, " +
                         $"peak RSS {d.PeakRssBytes / 1048576.0:0} MiB (before {d.RssBeforeBytes / 1048576.0:0} MiB), loss {d.Loss:0.0000}");
        stdout.WriteLine($"memory estimate on {session.Device}: {d.Estimate}");
        if (d.Gpu.Count == 0) return;
        string Shown(GpuPeak p) => p.UsedBytes is { } b ? MemoryEstimate.GiB(b) : "out of memory";
        stdout.WriteLine($"GPU memory in use after the pass (cudaMemGetInfo, of {MemoryEstimate.GiB(d.GpuTotalBytes)}): " +
                         string.Join(", ", d.Gpu.Select(p => $"{(p.Checkpointing ? "with" : "without")} activation checkpointing {Shown(p)}")));
        var o = session.Options;
        var mine = d.Configured(o.GradientCheckpointing);
        // a pass that did not run (the smaller one ran out of memory) does not fit either
        bool fits = mine?.UsedBytes is { } used && used <= 0.97 * d.GpuTotalBytes;
        if (fits) return;
        var facts = MemoryFacts.Of(session.Model, session.Adapter, cuda: true);
        var fixes = MemoryEstimator.WouldFit(facts, d.Shape, o.GradientCheckpointing, o.GradAccumulation, (long)(0.9 * d.GpuTotalBytes));
        throw new CliUsageException($"the longest batch does not fit in the GPU's {MemoryEstimate.GiB(d.GpuTotalBytes)} " +
            $"({(mine?.UsedBytes is { } u ? MemoryEstimate.GiB(u) + " in use" : "out of memory")}); " +
            (fixes.Count > 0 ? "by the estimate it would fit with " + string.Join(" or ", fixes.Select(f => $"[{f}]")) : "no setting of train.batch_size, data.max_tokens or train.gradient_checkpointing fits by the estimate"));
    }
}
