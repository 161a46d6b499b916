using System.Text.RegularExpressions;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Engine;
using HiggsCluster.Training;
using HiggsCluster.Training.Cuda;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.Engine.Memory;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Device;

/// <summary>The dry run's memory estimate, the settings it proposes when a batch does not fit, and the doc table made by it.</summary>
[Collection("Engine"), Trait("Category", "Device")]
public sealed class MemoryEstimateTests
{
    private static readonly Lazy<ModelFacts> H3B = new(() => MemoryTable.Higgs3B());

    [Fact]
    public void Weights_and_lora_state_are_the_counted_parameters_in_their_dtypes()
    {
        using var tmp = new TempDir();
        var o = EngineWorkspace.Options(tmp.File("run"), 1);
        o.DType = "bf16";
        using var s = EngineWorkspace.Open(o);
        var f = MemoryFacts.Of(s.Model, s.Adapter, cuda: false);
        long baseCount = s.Model.BaseParameters().Sum(p => p.Param.numel());
        long loraCount = s.Adapter.Parameters().Sum(p => p.numel());
        var e = MemoryEstimator.Estimate(f, new BatchShape(2, 100, 10, 80), checkpointing: false);
        Assert.Equal(2 * baseCount, e.Weights);
        Assert.Equal(20 * loraCount, e.LoraAndOptimizer);   // fp32 weight, gradient, two moments, all-reduce bucket
        Assert.Equal(0, e.Runtime);
        Assert.Equal(e.Weights + e.LoraAndOptimizer + e.Activations + e.Logits, e.Total);
    }

    [Fact]
    public void Activations_grow_with_tokens_and_checkpointing_keeps_far_less_at_3B()
    {
        var f = H3B.Value;
        Assert.InRange(f.BaseParameters, 5_000_000_000L, 6_500_000_000L);   // Llama-3.2-3B plus a DualFFN MLP per layer
        var one = MemoryEstimator.Estimate(f, MemoryTable.Sample(1, 4096), false);
        var four = MemoryEstimator.Estimate(f, MemoryTable.Sample(4, 4096), false);
        Assert.Equal(4 * one.Activations, four.Activations);
        Assert.Equal(4 * one.Logits, four.Logits);
        Assert.Equal(one.Weights, four.Weights);
        var ckpt = MemoryEstimator.Estimate(f, MemoryTable.Sample(4, 4096), true);
        Assert.True(ckpt.Activations * 5 < four.Activations, $"checkpointing {ckpt.Activations} vs {four.Activations}");
        Assert.Equal(1L << 30, ckpt.Runtime);
    }

    [Fact]
    public void Would_fit_proposes_checkpointing_then_a_smaller_micro_batch_then_shorter_samples_and_each_fits()
    {
        var f = H3B.Value;
        var shape = MemoryTable.Sample(4, 4096);
        long off = MemoryEstimator.Estimate(f, shape, false).Total, on = MemoryEstimator.Estimate(f, shape, true).Total;
        Assert.Empty(MemoryEstimator.WouldFit(f, shape, false, 8, off));
        var fixes = MemoryEstimator.WouldFit(f, shape, false, 8, on + 1);
        Assert.Equal("train.gradient_checkpointing: true", fixes[0]);

        // a budget that needs one sample per micro-batch: accumulation grows by the same factor
        long oneSample = MemoryEstimator.Estimate(f, MemoryTable.Sample(1, 4096), true).Total;
        var tight = MemoryEstimator.WouldFit(f, shape, true, 8, oneSample + 1);
        Assert.Contains("train.batch_size: 1, train.grad_accumulation: 32 (same global batch)", tight);
        var maxTokens = tight.Single(x => x.StartsWith("data.max_tokens", StringComparison.Ordinal));
        long len = long.Parse(Regex.Match(maxTokens, @"data\.max_tokens: (\d+)").Groups[1].Value);
        Assert.True(MemoryEstimator.Estimate(f, MemoryEstimator.Scale(shape, 4, len), true).Total <= oneSample + 1);
        Assert.True(MemoryEstimator.Estimate(f, MemoryEstimator.Scale(shape, 4, len * 2), true).Total > oneSample + 1);
        Assert.Empty(MemoryEstimator.WouldFit(f, shape, true, 8, f.BaseParameters));   // not even the weights fit
    }

    [Fact]
    public void The_table_in_docs_scaling_md_is_the_estimators()
    {
        var table = MemoryTable.Markdown(H3B.Value);
        var doc = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "scaling.md"));
        Assert.True(doc.Contains(table, StringComparison.Ordinal), "docs/scaling.md must hold the estimator's table:\n" + table);
    }

    [Fact]
    public void A_batch_that_does_not_fit_the_gpu_stops_the_run_naming_the_keys_that_would()
    {
        using var tmp = new TempDir();
        using var s = EngineWorkspace.Open(EngineWorkspace.Options(tmp.File("run"), 1));
        var shape = new BatchShape(1, 200, 5, 150);
        var facts = MemoryFacts.Of(s.Model, s.Adapter, true);
        var estimate = MemoryEstimator.Estimate(facts, shape, false);
        // a GPU whose usable 90 % lies between the estimates with and without checkpointing
        long total = (long)((MemoryEstimator.Estimate(facts, shape, true).Total + estimate.Total) / 1.8);
        var d = new DryRunResult(1, 200, 0.1, 0, 0, 1.0, shape, estimate,
            new[] { new GpuPeak(true, total / 2), new GpuPeak(false, null) }, total);
        var e = Assert.Throws<CliUsageException>(() => DryRunReport.Write(d, s, TextWriter.Null));
        Assert.Contains("does not fit in the GPU's", e.Message);
        Assert.Contains("out of memory", e.Message);
        Assert.Contains("[train.gradient_checkpointing: true]", e.Message);

        var ok = d with { Gpu = new[] { new GpuPeak(true, total / 2), new GpuPeak(false, total / 2) } };
        var text = new StringWriter();
        DryRunReport.Write(ok, s, text);
        Assert.Contains("with activation checkpointing", text.ToString());
        Assert.Contains("memory estimate on cpu", text.ToString());
    }

    [Fact]
    public void On_a_gpu_the_dry_run_measures_both_passes_and_checkpointing_takes_no_more()
    {
        if (TorchDevices.VisibleCudaDevices() == 0) Assert.Skip("no CUDA device visible to libtorch (CPU build or no GPU): the measured GPU pass needs one");
        using var tmp = new TempDir();
        var o = EngineWorkspace.Options(tmp.File("run"), 1);
        o.Device = "cuda";
        using var s = EngineWorkspace.Open(o);
        var d = DryRun.Run(s);
        Assert.Equal(2, d.Gpu.Count);
        Assert.All(d.Gpu, p => Assert.NotNull(p.UsedBytes));
        Assert.True(d.Gpu[0].UsedBytes <= d.Gpu[1].UsedBytes);
        Assert.Equal(ScalarType.BFloat16, s.Model.DType);
    }
}
