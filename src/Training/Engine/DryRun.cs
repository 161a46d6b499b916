using System.Diagnostics;
using System.Runtime.InteropServices;
using HiggsCluster.Training.Cuda;
using HiggsCluster.Training.Engine.Memory;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>GPU memory in use after one forward/backward (null: it ran out of memory), with or without activation checkpointing.</summary>
public sealed record GpuPeak(bool Checkpointing, long? UsedBytes);

public sealed record DryRunResult(int Samples, long Positions, double StepSeconds, long PeakRssBytes, long RssBeforeBytes, double Loss,
    BatchShape Shape, MemoryEstimate Estimate, IReadOnlyList<GpuPeak> Gpu, long GpuTotalBytes)
{
    /// <summary>The measured peak of the run's own setting (null on the CPU).</summary>
    public GpuPeak? Configured(bool checkpointing) => Gpu.FirstOrDefault(p => p.Checkpointing == checkpointing);
}

/// <summary>
/// One forward + backward on the longest micro-batch the run can meet (the batch_size longest samples) before training
/// starts: if it fits, how long it takes, and on CUDA how much GPU memory it takes with and without activation
/// checkpointing. Parameters, moments and the RNG are left as they were.
/// </summary>
public static class DryRun
{
    /// <param name="gpuMemory">(free, total) bytes of a CUDA device; <see cref="CudaRuntime.MemoryInfo"/> unless a test injects one.</param>
    public static DryRunResult Run(TrainingSession s, Func<int, (long Free, long Total)>? gpuMemory = null)
    {
        var ids = s.TrainIds.OrderByDescending(id => s.Store.Get(id).Positions).ThenBy(id => id).Take(s.Options.BatchSize).ToList();
        var rng = TrainerCheckpoint.CaptureRng();
        long before = Rss("VmRSS");
        bool configured = s.Model.GradientCheckpointing;
        bool cuda = s.Device.type == TorchSharp.DeviceType.CUDA;
        var peaks = new List<GpuPeak>();
        long total = 0;
        GradientResult? g = null;
        double secs = 0;
        if (cuda)
        {
            // TorchSharp exposes no allocator statistics and cannot empty the cache, so the cache only grows: the
            // memory in use after a pass is that pass's peak reserve (plus the context). The smaller pass goes first.
            int index = Math.Max(0, (int)s.Device.index);
            var mem = gpuMemory ?? CudaRuntime.MemoryInfo;
            total = mem(index).Total;
            foreach (var ckpt in new[] { true, false })
            {
                s.Model.GradientCheckpointing = ckpt;
                var (r, t, oom) = Pass(s, ids);
                if (ckpt == configured || g is null) { g = r ?? g; secs = ckpt == configured ? t : secs; }
                peaks.Add(new GpuPeak(ckpt, oom ? null : total - mem(index).Free));
                TrainerCheckpoint.RestoreRng(rng);
                if (oom) break;
            }
            s.Model.GradientCheckpointing = configured;
        }
        else
        {
            (g, secs, _) = Pass(s, ids);
            TrainerCheckpoint.RestoreRng(rng);
        }
        var shape = Shape(s, ids, g);
        var facts = MemoryFacts.Of(s.Model, s.Adapter, cuda);
        return new DryRunResult(ids.Count, g?.Positions ?? 0, secs, Rss("VmHWM"), before, g?.Loss ?? double.NaN,
            shape, MemoryEstimator.Estimate(facts, shape, configured), peaks, total);
    }

    private static (GradientResult? Result, double Seconds, bool OutOfMemory) Pass(TrainingSession s, List<long> ids)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            using var scope = NewDisposeScope();
            var batch = s.Store.Collate(ids);
            var g = s.Engine.ComputeGradients(new[] { batch });
            if (s.Device.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(s.Device);
            return (g, clock.Elapsed.TotalSeconds, false);
        }
        catch (ExternalException e) when (e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
        {
            return (null, clock.Elapsed.TotalSeconds, true);
        }
        finally { s.Engine.Optimizer.ZeroGrad(); }
    }

    /// <summary>The batch as the estimator sees it: samples × padded length, scored text targets and audio frames.</summary>
    private static BatchShape Shape(TrainingSession s, List<long> ids, GradientResult? g)
    {
        long longest = ids.Count == 0 ? 0 : ids.Max(id => (long)s.Store.Get(id).Positions);
        long audio = g?.CodebookTokens.DefaultIfEmpty(0).Max() ?? 0;
        return new BatchShape(ids.Count, longest, g?.TextTokens ?? 0, audio);
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
