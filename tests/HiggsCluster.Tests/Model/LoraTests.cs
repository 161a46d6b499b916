using System.Text.Json.Nodes;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "Model")]
public sealed class LoraTests
{
    [Fact]
    public void Suffix_rule_matches_like_peft()
    {
        var explicitList = new LoraConfig { TargetModules = new[] { "mlp.gate_proj" } };
        Assert.True(explicitList.Matches("layers.3.mlp.gate_proj"));
        Assert.False(explicitList.Matches("layers.3.audio_mlp.gate_proj"));   // "_mlp", not ".mlp"
        var suffix = new LoraConfig();
        Assert.True(suffix.Matches("layers.3.audio_mlp.gate_proj"));
        Assert.True(suffix.Matches("q_proj"));
        Assert.False(suffix.Matches("layers.3.self_attn.xq_proj"));
        var regex = new LoraConfig { TargetRegex = @"layers\.\d+\.self_attn\.(q|v)_proj" };
        Assert.True(regex.Matches("layers.12.self_attn.v_proj"));
        Assert.False(regex.Matches("layers.12.self_attn.k_proj"));
        Assert.False(regex.Matches("x.layers.12.self_attn.v_proj"));
    }

    [Fact]
    public void Fresh_adapter_is_identity_freezes_the_base_and_uses_kaiming_bounds()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var model = TinyModels.Random(cfg);
        var batch = TinyModels.TwoSamples(cfg);
        Tensor before;
        using (no_grad()) before = model.Forward(batch).Logits;
        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 });
        // 2 layers × (4 attention + 3 mlp + 3 audio_mlp) targets.
        Assert.Equal(20, adapter.ModulePaths.Count);
        Assert.All(model.BaseParameters(), p => Assert.False(p.Param.requires_grad));
        Assert.All(adapter.Parameters(), p => Assert.True(p.requires_grad));
        foreach (var (key, p) in adapter.NamedParameters())
        {
            if (key.EndsWith("lora_B.weight")) Assert.Equal(0, p.abs().max().item<float>());
            else
            {
                double bound = 1 / Math.Sqrt(p.shape[1]);
                Assert.True(p.abs().max().item<float>() <= bound && p.abs().max().item<float>() > 0.3 * bound, key);
            }
        }
        using (no_grad()) Assert.True(Same(model.Forward(batch).Logits, before));
    }

    [Fact]
    public void Adapter_save_and_load_round_trip_with_peft_names_dtypes_and_config()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var model = TinyModels.Random(cfg, seed: 2);
        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 4, Alpha = 16, Dropout = 0.1 });
        using (no_grad())
            foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape) * 0.1);
        var batch = TinyModels.TwoSamples(cfg);
        model.eval();
        Tensor expected;
        using (no_grad()) expected = model.Forward(batch).Logits;
        var dir = TinyModels.TempDir();
        adapter.Save(dir);

        using (var f = new SafetensorsFile(Path.Combine(dir, LoraAdapter.WeightsFile)))
        {
            Assert.Equal("pt", f.Metadata["format"]);
            Assert.Equal(40, f.Names.Count());
            Assert.All(f.Entries.Values, e => Assert.Equal("F32", e.DType));
            var a = f.Entry("base_model.model.layers.1.audio_mlp.down_proj.lora_A.weight");
            Assert.Equal(new long[] { 4, 64 }, a.Shape);
            var b = f.Entry("base_model.model.layers.0.self_attn.k_proj.lora_B.weight");
            Assert.Equal(new long[] { 16, 4 }, b.Shape);
        }
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, LoraAdapter.ConfigFile)))!.AsObject();
        Assert.Equal("LORA", json["peft_type"]!.GetValue<string>());
        Assert.True(json.ContainsKey("task_type") && json["task_type"] is null);
        Assert.Equal(4, json["r"]!.GetValue<int>());
        Assert.Equal(16, json["lora_alpha"]!.GetValue<double>());
        Assert.Equal(0.1, json["lora_dropout"]!.GetValue<double>());
        Assert.Equal("none", json["bias"]!.GetValue<string>());
        foreach (var k in new[] { "target_modules", "fan_in_fan_out", "use_rslora", "use_dora", "init_lora_weights", "modules_to_save", "rank_pattern", "alpha_pattern", "inference_mode" })
            Assert.True(json.ContainsKey(k), k);

        var fresh = ModelWeights.LoadModel(SaveBase(model), ScalarType.Float32);
        var loaded = LoraAdapter.Load(fresh, dir);
        Assert.Equal(adapter.ModulePaths, loaded.ModulePaths);
        fresh.eval();
        using (no_grad()) Assert.True(fresh.Forward(batch).Logits.allclose(expected, rtol: 0, atol: 0));
    }

    [Fact]
    public void Adapter_with_wrong_keys_is_rejected_naming_them()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var model = TinyModels.Random(cfg);
        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 2, Alpha = 4, Dropout = 0, TargetModules = new[] { "q_proj" } });
        var dir = TinyModels.TempDir();
        adapter.Save(dir);
        var other = TinyModels.Random(cfg);
        var cfgPath = Path.Combine(dir, LoraAdapter.ConfigFile);
        var json = JsonNode.Parse(File.ReadAllText(cfgPath))!.AsObject();
        json["target_modules"] = new JsonArray("q_proj", "v_proj");
        File.WriteAllText(cfgPath, json.ToJsonString());
        var e = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(other, dir));
        Assert.Contains("base_model.model.layers.0.self_attn.v_proj.lora_A.weight", e.Message);
    }

    [Fact]
    public void Merge_and_export_matches_the_adapted_model()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var model = TinyModels.Random(cfg, seed: 4);
        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 });
        using (no_grad())
            foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape) * 0.2);
        var batch = TinyModels.TwoSamples(cfg);
        var dir = TinyModels.TempDir();
        adapter.MergeAndExport(dir);
        var merged = ModelWeights.LoadModel(dir, ScalarType.Float32);
        Assert.Empty(merged.LoraParameters());
        using (no_grad())
        {
            var a = model.Forward(batch); var b = merged.Forward(batch);
            Assert.True(a.Logits.allclose(b.Logits, rtol: 1e-4, atol: 1e-5));
            Assert.True(a.AudioLogits.allclose(b.AudioLogits, rtol: 1e-4, atol: 1e-5));
            var baseOnly = TinyModels.Random(cfg, seed: 4).Forward(batch);
            Assert.False(baseOnly.Logits.allclose(b.Logits, rtol: 1e-4, atol: 1e-5));
        }
    }

    [Fact]
    public void Bf16_base_with_fp32_lora_follows_the_precision_policy_and_stays_close_to_fp32()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(ScalarType.Float32, PrecisionPolicy.For(CPU).BaseDType);
        Assert.Equal(ScalarType.BFloat16, PrecisionPolicy.Gpu.BaseDType);
        Assert.Equal(ScalarType.Float32, PrecisionPolicy.Gpu.LoraDType);
        var cfg = TinyModels.V2Like();
        var dir = SaveBase(TinyModels.Random(cfg, seed: 8));
        var f32 = ModelWeights.LoadModel(dir, PrecisionPolicy.Cpu, CPU);
        var bf16 = ModelWeights.LoadModel(dir, PrecisionPolicy.Gpu, CPU);
        var la = LoraAdapter.Attach(f32, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 });
        var lb = LoraAdapter.Attach(bf16, new LoraConfig { R = 4, Alpha = 8, Dropout = 0 }, PrecisionPolicy.Gpu.LoraDType);
        using (no_grad())
            foreach (var ((_, pa), (_, pb)) in la.NamedParameters().Zip(lb.NamedParameters()))
            {
                var v = randn(pa.shape) * 0.1;
                pa.copy_(v); pb.copy_(v);
            }
        Assert.All(lb.Parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        var batch = TinyModels.TwoSamples(cfg);
        var ra = f32.Forward(batch);
        var rb = bf16.Forward(batch);
        Assert.Equal(ScalarType.BFloat16, rb.Logits.dtype);
        Assert.Equal(ScalarType.Float32, rb.AudioLogits.dtype);
        Assert.True(rb.Logits.to_type(ScalarType.Float32).allclose(ra.Logits, rtol: 0.05, atol: 0.05));
        var loss = HiggsCluster.Training.Loss.HiggsLoss.Compute(rb.Logits, rb.ExpandedLabels, rb.AudioLogits, batch.LabelAudioIds);
        Assert.Equal(ScalarType.Float32, loss.Loss.dtype);
        loss.Loss.backward();
        Assert.All(lb.Parameters(), p => Assert.Equal(ScalarType.Float32, p.grad!.dtype));
        Assert.All(bf16.BaseParameters(), p => Assert.Null(p.Param.grad));
    }

    private static string SaveBase(HiggsAudioModel model)
    {
        var dir = TinyModels.TempDir();
        ModelWeights.Save(model, dir);
        return dir;
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
