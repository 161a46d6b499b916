using System.Diagnostics;
using System.Globalization;
using HiggsCluster.GpuWorker.AllReduce;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Cuda;
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
        if (!cuda.is_available())
        {
            Console.WriteLine("gpu: SKIPPED, no CUDA device visible to libtorch (this build's backend or this machine has none; "
                + "see bench/README.md: build with -p:TorchBackend=cuda on a GPU machine)");
            Console.WriteLine("RESULT gpu not measured: no CUDA device on this machine (tokens/s/GPU, MFU, NCCL bandwidth and memory need one)");
            return 0;
        }
        int batch = a.Int("batch", 4), frames = a.Int("frames", 750), steps = Math.Max(5, a.Int("steps", 10));
        double peakTflops = double.Parse(a.Str("peak-tflops", "989.4"), Inv);
        bool checkpointing = a.Int("grad-checkpointing", 0) != 0;
        var dev = new Device(a.Str("device", "cuda:0"));
        var cfg = CheckpointBench.FullSize();
        var policy = PrecisionPolicy.Gpu;
        Console.WriteLine($"gpu: {GpuName()} ({cuda.device_count()} visible), 3B architecture, random {policy.BaseDType} weights, LoRA r16 in {policy.LoraDType}");

        using var model = new HiggsAudioModel(cfg, policy.BaseDType, dev);
        using (no_grad())
            foreach (var (name, p) in model.BaseParameters())
                if (name.Contains("norm", StringComparison.Ordinal)) p.fill_(1.0); else p.normal_(0, 0.02);
        model.GradientCheckpointing = checkpointing;
        var o = new TrainOptions { Schedule = ScheduleKind.Constant, WarmupSteps = 0, LoraDropout = 0.0, Device = dev.ToString() };
        var adapter = LoraAdapter.Attach(model, o.ToLoraConfig(), policy.LoraDType);
        long loraParams = adapter.Parameters().Sum(p => p.numel());
        var engine = TrainingEngine.Create(model, adapter, o, steps + 2);

        // 3B token ids, 8 codebooks, target audio of `frames` frames per sample (750 = 30 s)
        using var b = PeerBench.MakeBatch(cfg, batch, new Random(5), frames);
        var times = new List<double>(); long positions = 0;
        for (int s = 0; s < steps + 2; s++)
        {
            cuda.synchronize(dev);
            var sw = Stopwatch.StartNew();
            using (var scope = NewDisposeScope())
            {
                var g = engine.ComputeGradients(new[] { b });
                engine.ApplyGradients(g, s);
                positions = g.Positions;
            }
            cuda.synchronize(dev);
            if (s >= 2) times.Add(sw.Elapsed.TotalSeconds);
        }
        double flopsPerToken = FlopsPerToken(cfg, positions / (double)batch);
        var tps = times.Select(t => positions / t).ToList();
        Console.WriteLine($"gpu: batch {batch} x ~{positions / batch} merged positions, {loraParams / 1e6:F1}M LoRA parameters, "
            + $"{flopsPerToken / 1e9:F1} GFLOP/token (4·N_active + attention), peak {peakTflops} TFLOP/s, activation checkpointing {(checkpointing ? "on" : "off")}");
        Console.WriteLine(Stats.Line("gpu_step_s", times, "s"));
        Console.WriteLine(Stats.Line("gpu_tokens_per_s", tps, "tokens/s"));
        Console.WriteLine(Stats.Line("gpu_mfu", tps.Select(x => x * flopsPerToken / (peakTflops * 1e12)).ToList(), "fraction"));
        Console.WriteLine($"RESULT gpu_memory {GpuMemory()} (nvidia-smi, this process; the ceiling is the device total)");
        NcclBucket(a);
        return 0;
    }

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
