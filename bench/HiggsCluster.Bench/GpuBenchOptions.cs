using System.Globalization;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;

namespace HiggsCluster.Bench;

/// <summary>
/// The options of `higgs-bench gpu`. The defaults are the target shape (3B, batch 4 × 4096 merged positions,
/// activation checkpointing on, LoRA r16 on q/k/v/o/gate/up/down), so the GPU kit's bare `higgs-bench gpu` measures it.
/// </summary>
internal sealed record GpuBenchOptions
{
    public string Shapes { get; init; } = "3b";
    public int Hidden { get; init; } = 256;
    public int Layers { get; init; } = 2;
    public int Batch { get; init; } = 4;
    /// <summary>Merged positions per sample (text + audio frames); 0 = take <see cref="Frames"/> target frames instead.</summary>
    public int Seq { get; init; } = 4096;
    public int Frames { get; init; } = 750;
    public int Steps { get; init; } = 10;
    public int Warmup { get; init; } = 2;
    public bool GradCheckpointing { get; init; } = true;
    public int LoraR { get; init; } = 16;
    /// <summary>Null: looked up from the GPU's name (<see cref="PeakBf16Tflops"/>).</summary>
    public double? PeakTflops { get; init; }
    public string Device { get; init; } = "cuda:0";
    /// <summary>"auto" (python3 when the peer script is found), "0" (off) or a python executable.</summary>
    public string Peer { get; init; } = "auto";
    public int PeerTimeoutS { get; init; } = 150;

    public IReadOnlyList<string> LoraTargets => LoraConfig.DefaultTargets;

    public static GpuBenchOptions Parse(BenchArgs a)
    {
        var d = new GpuBenchOptions();
        var o = new GpuBenchOptions
        {
            Shapes = a.Str("shapes", d.Shapes),
            Hidden = a.Int("hidden", d.Hidden),
            Layers = a.Int("layers", d.Layers),
            Batch = a.Int("batch", d.Batch),
            Seq = a.Int("seq", a.Str("frames", "") != "" ? 0 : d.Seq),
            Frames = a.Int("frames", d.Frames),
            Steps = a.Int("steps", d.Steps),
            Warmup = a.Int("warmup", d.Warmup),
            GradCheckpointing = a.Int("grad-checkpointing", 1) != 0,
            LoraR = a.Int("lora-r", d.LoraR),
            PeakTflops = a.Str("peak-tflops", "") is { Length: > 0 } p ? double.Parse(p, CultureInfo.InvariantCulture) : null,
            Device = a.Str("device", d.Device),
            Peer = a.Str("peer", d.Peer),
            PeerTimeoutS = a.Int("peer-timeout", d.PeerTimeoutS),
        };
        if (o.Shapes is not ("3b" or "small")) throw new ArgumentException($"--shapes must be 3b or small, got '{o.Shapes}'");
        if (o.Batch < 1 || o.Steps < 1 || o.Warmup < 0 || o.LoraR < 1) throw new ArgumentException("--batch, --steps and --lora-r must be positive, --warmup not negative");
        if (o.Seq < 0 || (o.Seq == 0 && o.Frames < 1)) throw new ArgumentException("--seq must be positive (or 0 with --frames N)");
        return o;
    }

    public HiggsAudioConfig Config() => Shapes == "3b" ? CheckpointBench.FullSize() : PeerBench.SmallConfig(Hidden, Layers);

    /// <summary>
    /// Dense bf16 tensor-core peak (TFLOP/s) from NVIDIA's data sheets for the GPUs this bench is meant for; null when
    /// the name is not one of them (then --peak-tflops is needed for a meaningful MFU).
    /// </summary>
    public static double? PeakBf16Tflops(string gpuName)
    {
        var n = gpuName.ToUpperInvariant();
        if (n.Contains("H100") || n.Contains("H200"))
            return n.Contains("PCIE") ? 756 : n.Contains("NVL") ? 835 : 989.4;   // SXM (and GH200) otherwise
        if (n.Contains("A100")) return 312;
        return null;
    }
}
