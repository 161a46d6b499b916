using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "Model")]
public sealed class PeftAdapterFolderTests
{
    /// <summary>adapter_config.json with every field PEFT's save_pretrained writes for a LoRA adapter (task_type null).</summary>
    private const string PeftConfig = """
    {
      "alpha_pattern": {},
      "auto_mapping": null,
      "base_model_name_or_path": "bosonai/higgs-audio-v2-generation-3B-base",
      "bias": "none",
      "eva_config": null,
      "exclude_modules": null,
      "fan_in_fan_out": false,
      "inference_mode": true,
      "init_lora_weights": true,
      "layer_replication": null,
      "layers_pattern": null,
      "layers_to_transform": null,
      "loftq_config": {},
      "lora_alpha": 16,
      "lora_bias": false,
      "lora_dropout": 0.05,
      "megatron_config": null,
      "megatron_core": "megatron.core",
      "modules_to_save": null,
      "peft_type": "LORA",
      "r": 2,
      "rank_pattern": {},
      "revision": null,
      "target_modules": ["v_proj", "q_proj", "audio_mlp.down_proj"],
      "task_type": null,
      "use_dora": false,
      "use_rslora": false
    }
    """;

    [Fact]
    public void Hand_written_peft_folder_loads_and_applies_alpha_over_r_times_b_a()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var baseDir = TinyModels.TempDir();
        ModelWeights.Save(TinyModels.Random(cfg, seed: 31), baseDir);

        var dir = TinyModels.TempDir();
        File.WriteAllText(Path.Combine(dir, LoraAdapter.ConfigFile), PeftConfig);
        var g = new Generator(32);
        var weights = new Dictionary<string, Tensor>();
        var expectedDeltas = new Dictionary<string, Tensor>();
        long h = cfg.Text.HiddenSize, kv = (long)cfg.Text.NumKeyValueHeads * cfg.Text.HeadDim, inter = cfg.Text.IntermediateSize;
        for (int layer = 0; layer < cfg.Text.NumHiddenLayers; layer++)
            foreach (var (module, outF, inF) in new[] { ("self_attn.q_proj", h, h), ("self_attn.v_proj", kv, h), ("audio_mlp.down_proj", h, inter) })
            {
                var path = $"layers.{layer}.{module}";
                var a = randn(new long[] { 2, inF }, generator: g) * 0.3;
                var b = randn(new long[] { outF, 2 }, generator: g) * 0.3;
                // PEFT saves adapters in the model's dtype: store bf16 and expect the bf16 values to be used.
                weights[$"base_model.model.{path}.lora_A.weight"] = a.to_type(ScalarType.BFloat16);
                weights[$"base_model.model.{path}.lora_B.weight"] = b.to_type(ScalarType.BFloat16);
                expectedDeltas[path + ".weight"] = b.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)
                    .matmul(a.to_type(ScalarType.BFloat16).to_type(ScalarType.Float32)) * (16.0 / 2);
            }
        SafetensorsWriter.Write(Path.Combine(dir, LoraAdapter.WeightsFile), weights, new Dictionary<string, string> { ["format"] = "pt" });

        var adapted = ModelWeights.LoadModel(baseDir, ScalarType.Float32);
        var adapter = LoraAdapter.Load(adapted, dir);
        Assert.Equal(3 * cfg.Text.NumHiddenLayers, adapter.ModulePaths.Count);
        Assert.Equal(8.0, adapter.Config.Scaling);
        Assert.Equal("bosonai/higgs-audio-v2-generation-3B-base", adapter.Config.BaseModelNameOrPath);

        // Reference: the base model with W + (alpha/r)·B·A written into the weights by hand.
        var reference = ModelWeights.LoadModel(baseDir, ScalarType.Float32);
        using (no_grad())
            foreach (var (name, p) in reference.BaseParameters())
                if (expectedDeltas.TryGetValue(name, out var d)) p.add_(d);
        adapted.eval(); reference.eval();
        var batch = TinyModels.TwoSamples(cfg);
        using (no_grad())
        {
            var x = adapted.Forward(batch); var r = reference.Forward(batch);
            Assert.True(x.Logits.allclose(r.Logits, rtol: 1e-4, atol: 1e-5));
            Assert.True(x.AudioLogits.allclose(r.AudioLogits, rtol: 1e-4, atol: 1e-5));
        }
    }
}
