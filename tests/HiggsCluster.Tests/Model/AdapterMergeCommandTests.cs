using HiggsCluster.Cli.Commands;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "Model")]
public sealed class AdapterMergeCommandTests
{
    private static (string Base, string Adapter, HiggsAudioConfig Cfg) BaseAndAdapter()
    {
        var cfg = TinyModels.V2Like();
        var model = TinyModels.Random(cfg, seed: 21);
        var baseDir = TinyModels.TempDir();
        ModelWeights.Save(model, baseDir);
        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 4, Alpha = 12, Dropout = 0.05 });
        using (no_grad())
        {
            var g = new Generator(22);
            foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape, generator: g) * 0.2);
        }
        var adapterDir = TinyModels.TempDir();
        adapter.Save(adapterDir);
        return (baseDir, adapterDir, cfg);
    }

    private static int Merge(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int rc = CommandTable.Dispatch(new[] { "adapter", "merge" }.Concat(args).ToArray(), stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        Assert.Contains("20 LoRA targets", stdout.ToString());
        return rc;
    }

    [Fact]
    public void Merged_checkpoint_without_lora_gives_the_logits_of_base_plus_adapter()
    {
        using var scope = NewDisposeScope();
        var (baseDir, adapterDir, _) = BaseAndAdapter();
        var outDir = TinyModels.TempDir();
        Merge("--base", baseDir, "--adapter", adapterDir, "--out", outDir);

        var merged = ModelWeights.LoadModel(outDir, ScalarType.Float32);
        Assert.Empty(merged.LoraParameters());
        using (var f = new SafetensorsFile(Path.Combine(outDir, ModelWeights.SingleFile)))
            Assert.All(f.Entries.Values, e => Assert.Equal("F32", e.DType));
        AssertMergedIsBasePlusAdapter(merged, baseDir, adapterDir);
    }

    /// <summary>The merged model's logits are the base + adapter's, and differ from the base alone's.</summary>
    internal static void AssertMergedIsBasePlusAdapter(HiggsAudioModel merged, string baseDir, string adapterDir)
    {
        var adapted = ModelWeights.LoadModel(baseDir, ScalarType.Float32);
        LoraAdapter.Load(adapted, adapterDir);
        var plain = ModelWeights.LoadModel(baseDir, ScalarType.Float32);
        adapted.eval(); merged.eval(); plain.eval();
        var batch = TinyModels.TwoSamples(merged.Config);
        using (no_grad())
        {
            var a = adapted.Forward(batch); var m = merged.Forward(batch);
            // W·x + s·B(A·x) versus (W + s·B·A)·x: the same sum, rounded in a different order (fp32).
            Assert.True(a.Logits.allclose(m.Logits, rtol: 1e-4, atol: 1e-5));
            Assert.True(a.AudioLogits.allclose(m.AudioLogits, rtol: 1e-4, atol: 1e-5));
            Assert.False(plain.Forward(batch).Logits.allclose(m.Logits, rtol: 1e-3, atol: 1e-3));
        }
    }

    [Fact]
    public void Bf16_output_in_small_shards_loads_to_the_bf16_rounding_of_the_fp32_merge()
    {
        using var scope = NewDisposeScope();
        var (baseDir, adapterDir, _) = BaseAndAdapter();
        var fp32Dir = TinyModels.TempDir();
        var bf16Dir = TinyModels.TempDir();
        Merge("--base", baseDir, "--adapter", adapterDir, "--out", fp32Dir);
        // 20 kB shards force the HF sharded layout for the tiny model.
        Merge("--base", baseDir, "--adapter", adapterDir, "--out", bf16Dir, "--dtype", "bf16", "--shard-gb", "0.00002");

        Assert.True(File.Exists(Path.Combine(bf16Dir, ModelWeights.IndexFile)));
        Assert.False(File.Exists(Path.Combine(bf16Dir, ModelWeights.SingleFile)));
        var shards = Directory.GetFiles(bf16Dir, "model-*-of-*.safetensors");
        Assert.True(shards.Length > 2);
        foreach (var s in shards)
        {
            using var f = new SafetensorsFile(s);
            Assert.All(f.Entries.Values, e => Assert.Equal("BF16", e.DType));
        }
        var f32 = ModelWeights.LoadModel(fp32Dir, ScalarType.Float32).BaseParameters().ToDictionary(p => p.Name, p => p.Param);
        var b16 = ModelWeights.LoadModel(bf16Dir, ScalarType.BFloat16).BaseParameters().ToDictionary(p => p.Name, p => p.Param);
        Assert.Equal(f32.Keys.Order(), b16.Keys.Order());
        foreach (var (name, p) in f32)
            Assert.True(p.to_type(ScalarType.BFloat16).eq(b16[name]).all().item<bool>(), name);
    }

    [Fact]
    public void Missing_arguments_and_bad_dtype_are_usage_errors()
    {
        var (baseDir, adapterDir, _) = BaseAndAdapter();
        var e = Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(new[] { "adapter", "merge", "--base", baseDir, "--out", "x" }, TextWriter.Null, TextWriter.Null));
        Assert.Contains("--adapter", e.Message);
        var d = Assert.Throws<CliUsageException>(() => CommandTable.Dispatch(
            new[] { "adapter", "merge", "--base", baseDir, "--adapter", adapterDir, "--out", TinyModels.TempDir(), "--dtype", "fp16" }, TextWriter.Null, TextWriter.Null));
        Assert.Contains("fp16", d.Message);
        var err = new StringWriter();
        Assert.Equal(1, CommandTable.Dispatch(new[] { "adapter", "merge", "--base", baseDir, "--adapter", TinyModels.TempDir(), "--out", TinyModels.TempDir() }, TextWriter.Null, err));
        Assert.Contains("adapter_config.json", err.ToString());
    }
}
