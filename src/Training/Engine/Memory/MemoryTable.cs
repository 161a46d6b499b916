using System.Globalization;
using System.Text;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine.Memory;

/// <summary>
/// The table of docs/scaling.md: the 3B model in bf16 with LoRA r 16 on every projection, by batch and activation
/// checkpointing, from <see cref="MemoryEstimator"/> (the dry run's estimator). A test keeps the doc equal to it.
/// </summary>
public static class MemoryTable
{
    /// <summary>Prompt positions of the TTS-shaped sample the table assumes: the rest are audio frames; 64 text targets.</summary>
    public const int PromptPositions = 512, TextTargets = 64;

    /// <summary>Counts from the 3B model itself, built with uninitialised bf16 weights (untouched pages cost no memory).</summary>
    public static ModelFacts Higgs3B(int r = 16)
    {
        using var scope = NewDisposeScope();
        using var model = new HiggsAudioModel(ReleasedShapes.Higgs3B(), ScalarType.BFloat16, CPU);
        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = r, Alpha = 2 * r, Dropout = 0 }, ScalarType.Float32);
        return MemoryFacts.Of(model, adapter, cuda: true);
    }

    public static BatchShape Sample(int samples, long positions) =>
        new(samples, positions, (long)TextTargets * samples, (positions - PromptPositions) * samples);

    public static string Markdown(ModelFacts f)
    {
        var sb = new StringBuilder();
        sb.AppendLine("| micro-batch | activation checkpointing | weights | LoRA + AdamW | activations | logits | runtime | total |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
        foreach (var (n, len) in new[] { (1, 4096L), (4, 4096L) })
            foreach (var ckpt in new[] { false, true })
            {
                var e = MemoryEstimator.Estimate(f, Sample(n, len), ckpt);
                sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {n} × {len} | {(ckpt ? "on" : "off")} | {G(e.Weights)} | {G(e.LoraAndOptimizer)} | {G(e.Activations)} | {G(e.Logits)} | {G(e.Runtime)} | **{G(e.Total)}** |"));
            }
        return sb.ToString();
    }

    private static string G(long bytes) => (bytes / 1e9).ToString("0.0", CultureInfo.InvariantCulture) + " GB";
}
