using System.Diagnostics;
using System.Globalization;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Cuda;
using HiggsCluster.Planning;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench gpu`: the full 3B architecture (released shapes, random bf16 weights, LoRA r16 in fp32 as the GPU
/// precision policy says) on one CUDA device: tokens/s/GPU of forward+backward+clip+AdamW, MFU against the device's
/// bf16 peak, GPU memory, and NCCL all-reduce bus bandwidth of one 3B LoRA bucket when two or more GPUs are visible.
/// Needs a build with -p:TorchBackend=cuda; without CUDA it says so and exits 0.
/// </summary>
internal static class GpuBench
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    public static int Run(BenchArgs a)
    {
        var o = GpuBenchOptions.Parse(a);
        var dev = new Device(o.Device);
        if (dev.type == TorchSharp.DeviceType.CUDA && !cuda.is_available())
        {
            Console.WriteLine("gpu: SKIPPED, no CUDA device visible to libtorch (this build's backend or this machine has none; "
                + "see bench/README.md, \"On a GPU machine\")");
            Console.WriteLine("RESULT gpu not measured: no CUDA device on this machine (tokens/s/GPU, MFU, NCCL bandwidth and memory need one)");
            return 0;
        }
        bool onGpu = dev.type == TorchSharp.DeviceType.CUDA;
        var cfg = o.Config();
        var policy = PrecisionPolicy.For(dev);
        string gpuName = onGpu ? GpuName() : "cpu";
        double peakTflops = o.PeakTflops ?? GpuBenchOptions.PeakBf16Tflops(gpuName) ?? 989.4;
        if (onGpu && o.PeakTflops is null && GpuBenchOptions.PeakBf16Tflops(gpuName) is null)
            Console.WriteLine($"gpu: '{gpuName}' has no known bf16 peak; MFU uses 989.4 TFLOP/s (H100 SXM), pass --peak-tflops for this GPU");
        Console.WriteLine($"gpu: {gpuName}{(onGpu ? $" ({cuda.device_count()} visible)" : " (smoke run: no figure here means anything)")}, "
            + $"{o.Shapes} shapes, random {policy.BaseDType} base, LoRA r{o.LoraR} in {policy.LoraDType} on {string.Join("/", o.LoraTargets)}, "
            + $"loss in {policy.LossDType}, AdamW, activation checkpointing {(o.GradCheckpointing ? "on" : "off")}");

        // Token ids and codes of the 3B vocabulary, 8 codebooks; built before the peer so both get the same shapes.
        using var b = o.Seq > 0 ? GpuBenchBatch.OfSeq(cfg, o.Batch, o.Seq, seed: 5) : PeerBench.MakeBatch(cfg, o.Batch, new Random(5), o.Frames);
        var rows = GpuBenchBatch.RowLengths(cfg, b);
        long positions = rows.Sum();
        Console.WriteLine($"gpu: batch {o.Batch} x {(o.Seq > 0 ? $"{o.Seq}" : $"~{positions / o.Batch} (target audio {o.Frames} frames)")} merged positions = {positions} per step");

        // The peer first: our process keeps libtorch's cached GPU memory until it exits.
        var peer = GpuBenchPeer.Run(o, peakTflops, (int)Math.Round(positions / (double)o.Batch));

        double flopsPerToken = FlopsPerToken(cfg, positions / (double)o.Batch);
        long baseline = onGpu ? DeviceUsedMiB() ?? 0 : 0;
        var times = new List<double>();
        long loraParams = 0; int loraLinears = 0;
        Training.Engine.Memory.MemoryEstimate? estimate = null;
        string? generation = null;
        try
        {
            using var model = new HiggsAudioModel(cfg, policy.BaseDType, dev);
            using (no_grad())
                foreach (var (name, p) in model.BaseParameters())
                    if (name.Contains("norm", StringComparison.Ordinal)) p.fill_(1.0); else p.normal_(0, 0.02);
            model.GradientCheckpointing = o.GradCheckpointing;
            var t = new TrainOptions
            {
                Schedule = ScheduleKind.Constant, WarmupSteps = 0, LoraDropout = 0.0, Device = dev.ToString(),
                LoraR = o.LoraR, LoraAlpha = 2 * o.LoraR, LoraTargets = o.LoraTargets,
            };
            var adapter = LoraAdapter.Attach(model, t.ToLoraConfig(), policy.LoraDType);
            loraParams = adapter.Parameters().Sum(p => p.numel());
            loraLinears = adapter.ModulePaths.Count;
            var engine = TrainingEngine.Create(model, adapter, t, o.Steps + o.Warmup);
            // the dry run's estimator on the same shapes, printed beside the measured peak so the two can be compared
            var shape = new Training.Engine.Memory.BatchShape(o.Batch, rows.Max(), Training.Engine.Memory.MemoryTable.TextTargets * (long)o.Batch,
                Math.Max(0, positions - (long)Training.Engine.Memory.MemoryTable.PromptPositions * o.Batch));
            estimate = Training.Engine.Memory.MemoryEstimator.Estimate(Training.Engine.Memory.MemoryFacts.Of(model, adapter, onGpu), shape, o.GradCheckpointing);
            for (int s = 0; s < o.Steps + o.Warmup; s++)
            {
                Sync(dev);
                var sw = Stopwatch.StartNew();
                using (var scope = NewDisposeScope())
                {
                    var g = engine.ComputeGradients(new[] { b });
                    engine.ApplyGradients(g, s);
                    if (g.Positions != positions) throw new InvalidOperationException($"the engine saw {g.Positions} positions, the batch has {positions}");
                }
                Sync(dev);
                if (s >= o.Warmup) times.Add(sw.Elapsed.TotalSeconds);
            }
            // generation at the same shapes, with the adapter attached: seconds of audio per wall second (KV cache, sampler)
            if (a.Int("generate-seconds", 10) is > 0 and var genSeconds)
            {
                var tokens = GenerationSpeed.Tokens(cfg, o.Shapes == "3b");
                var (rtf, msPerColumn, columns) = GenerationSpeed.Measure(model, tokens, genSeconds, framesPerSecond: 25);
                generation = $"RESULT gpu_generate_audio_s_per_wall_s {rtf:F2} ({columns} columns, {msPerColumn:F1} ms per column, random weights, batch 1, KV cache)";
            }
        }
        catch (Exception e) when (e.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase))
        {
            Console.WriteLine($"RESULT gpu_tokens_per_s not measured: out of memory at batch {o.Batch} x {positions / o.Batch} positions "
                + $"(checkpointing {(o.GradCheckpointing ? "on" : "off")}): {e.Message.Split('\n')[0]}");
            Console.WriteLine($"RESULT gpu_memory {GpuMemory()} (nvidia-smi at the failure)");
            return 1;
        }

        var tps = times.Select(x => positions / x).ToList();
        Console.WriteLine($"gpu: {loraParams / 1e6:F1}M LoRA parameters on {loraLinears} linears, {flopsPerToken / 1e9:F2} GFLOP/token "
            + $"(4·N_active + 12·layers·hidden·T, recomputation not counted), peak {peakTflops} TFLOP/s, {o.Warmup} warm-up + {o.Steps} timed steps");
        Console.WriteLine(Stats.Line("gpu_step_s", times, "s"));
        Console.WriteLine(Stats.Line("gpu_tokens_per_s", tps, "tokens/s"));
        Console.WriteLine(Stats.Line("gpu_mfu", tps.Select(x => x * flopsPerToken / (peakTflops * 1e12)).ToList(), "fraction"));
        if (onGpu)
        {
            // libtorch's caching allocator hands nothing back, so the process's memory now is its peak reserve + the CUDA context.
            var (mib, source) = PeakMiB(baseline);
            if (mib is long m) Console.WriteLine(Stats.Line("gpu_peak_memory_GiB", new[] { m / 1024.0 }, "GiB") + $" ({source})");
            Console.WriteLine($"RESULT gpu_memory {GpuMemory()} (nvidia-smi, this process; the ceiling is the device total)");
        }
        if (estimate is not null) Console.WriteLine($"RESULT gpu_memory_estimate {estimate} (MemoryEstimator, the dry run's; compare with the measured peak)");
        if (peer.TokensPerS is double peerTps && tps.Count > 0)
            Console.WriteLine(string.Format(Inv, "RESULT gpu_vs_peer ours/pytorch tokens/s = {0:F3} ({1:F0} / {2:F0}, medians, same shapes and device; target >= 1.0)",
                Stats.Median(tps) / peerTps, Stats.Median(tps), peerTps));
        if (generation is not null) Console.WriteLine(generation);
        if (onGpu) NcclBucket(a);
        return 0;
    }

    private static void Sync(Device dev)
    {
        if (dev.type == TorchSharp.DeviceType.CUDA) cuda.synchronize(dev);
    }

    /// <summary>This process's GPU memory from nvidia-smi; where a container hides the pid, the device's growth since <paramref name="baseline"/>.</summary>
    private static (long? MiB, string Source) PeakMiB(long baseline)
    {
        var apps = Smi("--query-compute-apps=pid,used_memory --format=csv,noheader,nounits");
        var mine = apps?.Split('\n').FirstOrDefault(l => l.StartsWith(Environment.ProcessId + ",", StringComparison.Ordinal));
        if (mine is not null && long.TryParse(mine.Split(',')[1].Trim(), out var v)) return (v, "nvidia-smi, this process: peak reserve + CUDA context");
        return DeviceUsedMiB() is long used ? (used - baseline, "nvidia-smi, device memory used minus before the model") : (null, "");
    }

    private static long? DeviceUsedMiB() =>
        long.TryParse(Smi("--query-gpu=memory.used --format=csv,noheader,nounits")?.Split('\n')[0].Trim(), out var v) ? v : null;

    /// <summary>4·N_active (forward + input-gradient backward through the frozen base) + 12·layers·hidden·T for attention.</summary>
    public static double FlopsPerToken(HiggsAudioConfig c, double seqLen)
    {
        var t = c.Text;
        double attn = (double)t.HiddenSize * t.NumAttentionHeads * t.HeadDim * 2 + (double)t.HiddenSize * t.NumKeyValueHeads * t.HeadDim * 2;
        double ffn = 3.0 * t.HiddenSize * t.IntermediateSize;
        double nActive = t.NumHiddenLayers * (attn + ffn) + (double)t.HiddenSize * t.VocabSize;
        return 4 * nActive + 12.0 * t.NumHiddenLayers * t.HiddenSize * seqLen;
    }

    /// <summary>NCCL sum of one 39.5M-float bucket across every visible GPU (one thread per GPU); needs two or more.</summary>
    private static void NcclBucket(BenchArgs a)
    {
        int n = (int)cuda.device_count();
        if (n < 2 || !NcclAllReduce.IsAvailable(out _))
        {
            Console.WriteLine($"gpu: NCCL all-reduce not measured: needs 2+ GPUs and libnccl.so.2 ({n} GPU(s) visible)");
            return;
        }
        if (!CudaRuntime.Available(out var why))
        {
            Console.WriteLine($"gpu: NCCL all-reduce not measured: {why}");
            return;
        }
        long count = a.Int("floats", (int)AllReduceBench.Bucket3B);
        var id = NcclAllReduce.CreateUniqueId();
        var times = new List<double>[n];
        var threads = Enumerable.Range(0, n).Select(r => new Thread(() =>
        {
            CudaRuntime.SetDevice(r);
            using var comm = NcclAllReduce.Join(id, r, n, 1);
            using var buf = ones(count, ScalarType.Float32, new Device(TorchSharp.DeviceType.CUDA, r));
            var ptr = NativeTensor.DataPointer(buf);
            times[r] = new List<double>();
            for (int i = 0; i < 7; i++)
            {
                cuda.synchronize(new Device(TorchSharp.DeviceType.CUDA, r));
                var sw = Stopwatch.StartNew();
                comm.AllReduceSum(GradientBucket.Device(ptr, count));
                cuda.synchronize(new Device(TorchSharp.DeviceType.CUDA, r));
                if (i >= 2) times[r].Add(sw.Elapsed.TotalSeconds);
            }
        })).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var t0 = times[0];
        Console.WriteLine(Stats.Line($"gpu_nccl{n}_bucket3b_s", t0, "s"));
        Console.WriteLine(Stats.Line($"gpu_nccl{n}_bucket3b_busbw_GBps", t0.Select(t => 2.0 * (n - 1) / n * count * 4 / t / 1e9).ToList(), "GB/s"));
    }

    private static string GpuName() => Smi("--query-gpu=name,memory.total --format=csv,noheader") ?? "CUDA device";

    private static string GpuMemory()
    {
        var used = Smi($"--query-compute-apps=pid,used_memory --format=csv,noheader");
        var mine = used?.Split('\n').FirstOrDefault(l => l.StartsWith(Environment.ProcessId + ",", StringComparison.Ordinal));
        var total = Smi("--query-gpu=memory.total --format=csv,noheader");
        return $"used={(mine is null ? "?" : mine.Split(',')[1].Trim())} total={total?.Split('\n')[0] ?? "?"}";
    }

    private static string? Smi(string args)
    {
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", args) { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(psi);
            if (p is null) return null;
            var s = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            return p.ExitCode == 0 ? s : null;
        }
        catch (System.ComponentModel.Win32Exception) { return null; }
    }
}
