using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Training.Engine;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Tests.Model;

/// <summary>Adapters and merges on the boson and the transformers ≥ 5.3 (model.…) checkpoint layouts.</summary>
[Trait("Category", "Model")]
public sealed class AdapterLayoutTests
{
    private static HiggsAudioConfig Cfg(WeightsLayout layout) =>
        TinyModels.V2Like() with { AdapterType = AudioAdapterType.DualFfn, Layout = layout };

    /// <summary>A base written in <paramref name="layout"/> (same weights for the same seed) and loaded back from disk.</summary>
    private static (string Dir, HiggsAudioModel Model) Base(WeightsLayout layout, long seed = 41)
    {
        var dir = TinyModels.TempDir();
        ModelWeights.Save(TinyModels.Random(Cfg(layout), seed), dir);
        return (dir, ModelWeights.LoadModel(dir, ScalarType.Float32));
    }

    private static LoraAdapter RandomAdapter(HiggsAudioModel model, LoraConfig? cfg = null)
    {
        var adapter = LoraAdapter.Attach(model, cfg ?? new LoraConfig { R = 4, Alpha = 8, Dropout = 0, TargetModules = LoraConfig.DefaultTargets.Append("text_lm_head").ToArray() });
        using var _ = no_grad();
        var g = new Generator(43);
        foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape, generator: g) * 0.2);
        return adapter;
    }

    private static string[] Keys(string file)
    {
        using var f = new SafetensorsFile(file);
        return f.Names.OrderBy(k => k, StringComparer.Ordinal).ToArray();
    }

    private static (Tensor Text, Tensor Audio) Logits(HiggsAudioModel m)
    {
        m.eval();
        using var _ = no_grad();
        var r = m.Forward(TinyModels.TwoSamples(m.Config));
        return (r.Logits.detach().clone(), r.AudioLogits.detach().clone());
    }

    private static int Cli(params string[] args)
    {
        var stdout = new StringWriter(); var stderr = new StringWriter();
        int rc = CommandTable.Dispatch(args, stdout, stderr);
        Assert.True(rc == 0, stderr.ToString());
        return rc;
    }

    [Fact]
    public void Transformers_base_checkpoint_is_written_and_read_in_its_own_layout()
    {
        using var scope = NewDisposeScope();
        var (dir, model) = Base(WeightsLayout.TransformersV2);
        Assert.Equal(WeightsLayout.TransformersV2, model.Config.Layout);
        var keys = Keys(Path.Combine(dir, ModelWeights.SingleFile));
        Assert.Contains("model.layers.0.self_attn.q_proj.weight", keys);
        Assert.Contains("text_lm_head.weight", keys);
        Assert.DoesNotContain(keys, k => k.StartsWith("layers.", StringComparison.Ordinal) || k.StartsWith("audio_decoder_proj.", StringComparison.Ordinal));
        Assert.Equal("higgs_audio_v2", JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "config.json")))!["model_type"]!.GetValue<string>());
        foreach (var (name, _) in model.BaseParameters())
            Assert.Equal(name, LayoutKeys.ToModel(LayoutKeys.FromModel(name, WeightsLayout.TransformersV2), WeightsLayout.TransformersV2));
    }

    [Fact]
    public void Adapter_keys_follow_the_base_layout()
    {
        using var scope = NewDisposeScope();
        var tf = RandomAdapter(Base(WeightsLayout.TransformersV2).Model);
        var boson = RandomAdapter(Base(WeightsLayout.Boson).Model);
        var tfDir = TinyModels.TempDir(); var bosonDir = TinyModels.TempDir();
        tf.Save(tfDir); boson.Save(bosonDir);

        var tfKeys = Keys(Path.Combine(tfDir, LoraAdapter.WeightsFile));
        var bosonKeys = Keys(Path.Combine(bosonDir, LoraAdapter.WeightsFile));
        Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", tfKeys);
        Assert.Contains("base_model.model.text_lm_head.lora_B.weight", tfKeys);
        Assert.All(tfKeys.Where(k => !k.Contains("lm_head", StringComparison.Ordinal)),
            k => Assert.StartsWith("base_model.model.model.layers.", k));
        Assert.Contains("base_model.model.layers.0.self_attn.q_proj.lora_A.weight", bosonKeys);
        Assert.Contains("base_model.model.audio_decoder_proj.text_lm_head.lora_B.weight", bosonKeys);
        Assert.DoesNotContain(bosonKeys, k => k.StartsWith("base_model.model.model.", StringComparison.Ordinal));
        Assert.Equal(bosonKeys.Length, tfKeys.Length);
    }

    [Fact]
    public void An_adapter_of_either_layout_loads_on_a_base_of_either_layout_with_the_same_logits()
    {
        using var scope = NewDisposeScope();
        var (bosonBase, bosonModel) = Base(WeightsLayout.Boson);
        var (tfBase, _) = Base(WeightsLayout.TransformersV2);
        var adapter = RandomAdapter(bosonModel);
        var expected = Logits(bosonModel);
        var bosonAdapter = TinyModels.TempDir();
        adapter.Save(bosonAdapter);
        var tfAdapter = TinyModels.TempDir();
        Cli("adapter", "export", "--adapter", bosonAdapter, "--out", tfAdapter, "--layout", "transformers");

        foreach (var (baseDir, adapterDir, fileLayout) in new[]
                 {
                     (tfBase, bosonAdapter, WeightsLayout.Boson), (tfBase, tfAdapter, WeightsLayout.TransformersV2),
                     (bosonBase, tfAdapter, WeightsLayout.TransformersV2),
                 })
        {
            var m = ModelWeights.LoadModel(baseDir, ScalarType.Float32);
            var loaded = LoraAdapter.Load(m, adapterDir);
            Assert.Equal(fileLayout, loaded.Layout);
            Assert.Equal(adapter.ModulePaths, loaded.ModulePaths);
            var (text, audio) = Logits(m);
            Assert.True(text.equal(expected.Text).all().item<bool>(), $"{baseDir} + {adapterDir}");
            Assert.True(audio.equal(expected.Audio).all().item<bool>());
        }
        // The control: the same base without the adapter differs, so the loads above did put B in place.
        Assert.False(Logits(ModelWeights.LoadModel(tfBase, ScalarType.Float32)).Text.allclose(expected.Text, rtol: 1e-3, atol: 1e-3));
    }

    [Fact]
    public void Export_boson_to_transformers_and_back_gives_identical_tensors_and_config()
    {
        using var scope = NewDisposeScope();
        var adapter = RandomAdapter(Base(WeightsLayout.Boson).Model);
        var a = TinyModels.TempDir(); var b = TinyModels.TempDir(); var c = TinyModels.TempDir();
        adapter.Save(a);
        Cli("adapter", "export", "--adapter", a, "--out", b, "--layout", "transformers");
        Cli("adapter", "export", "--adapter", b, "--out", c, "--layout", "boson");

        Assert.All(Keys(Path.Combine(b, LoraAdapter.WeightsFile)), k => Assert.True(
            k.StartsWith("base_model.model.model.layers.", StringComparison.Ordinal) || k.StartsWith("base_model.model.text_lm_head.", StringComparison.Ordinal), k));
        var first = SafetensorsFile.ReadAll(Path.Combine(a, LoraAdapter.WeightsFile));
        var back = SafetensorsFile.ReadAll(Path.Combine(c, LoraAdapter.WeightsFile));
        Assert.Equal(first.Keys.OrderBy(k => k, StringComparer.Ordinal), back.Keys.OrderBy(k => k, StringComparer.Ordinal));
        foreach (var (k, t) in first) Assert.True(t.equal(back[k]).all().item<bool>(), k);
        Assert.Equal(File.ReadAllText(Path.Combine(a, LoraAdapter.ConfigFile)), File.ReadAllText(Path.Combine(c, LoraAdapter.ConfigFile)));
    }

    [Fact]
    public void A_regex_target_is_matched_in_the_file_layout_and_rewritten_exactly_on_export()
    {
        using var scope = NewDisposeScope();
        var (_, tfModel) = Base(WeightsLayout.TransformersV2);
        // PEFT fullmatches a regex against the wrapped model's names, which on this layout start with "model.".
        var adapter = RandomAdapter(tfModel, new LoraConfig { R = 2, Alpha = 4, Dropout = 0, TargetRegex = @"model\.layers\.1\.self_attn\.(q|v)_proj" });
        Assert.Equal(new[] { "layers.1.self_attn.q_proj", "layers.1.self_attn.v_proj" }, adapter.ModulePaths);
        var tfDir = TinyModels.TempDir(); var bosonDir = TinyModels.TempDir();
        adapter.Save(tfDir);
        Cli("adapter", "export", "--adapter", tfDir, "--out", bosonDir, "--layout", "boson");
        var regex = LoraConfig.Load(Path.Combine(bosonDir, LoraAdapter.ConfigFile)).TargetRegex;
        Assert.Equal(@"layers\.1\.self_attn\.q_proj|layers\.1\.self_attn\.v_proj", regex);
        var loaded = LoraAdapter.Load(Base(WeightsLayout.Boson).Model, bosonDir);
        Assert.Equal(adapter.ModulePaths, loaded.ModulePaths);
    }

    [Fact]
    public void Adapter_config_records_the_hub_id_and_revision_when_set_and_the_folder_otherwise()
    {
        var o = new TrainOptions { Manifest = "m.jsonl", TextTokenizer = "t.json", AudioTokenizer = "a", BaseModelDir = "models/local-base" };
        var local = o.ToLoraConfig().ToPeftJson();
        Assert.Equal("models/local-base", local["base_model_name_or_path"]!.GetValue<string>());
        Assert.Null(local["revision"]);

        var tc = TrainConfig.Load(null, [KeyValuePair.Create("model.hub_id", "bosonai/higgs-audio-v2-generation-3B-base"), KeyValuePair.Create("revision", "0123abc")], null, o);
        tc.Validate(checkFiles: false);
        var hub = tc.ToLoraConfig().ToPeftJson();
        Assert.Equal("bosonai/higgs-audio-v2-generation-3B-base", hub["base_model_name_or_path"]!.GetValue<string>());
        Assert.Equal("0123abc", hub["revision"]!.GetValue<string>());
        var dir = TinyModels.TempDir();
        tc.ToLoraConfig().Save(Path.Combine(dir, LoraAdapter.ConfigFile));
        Assert.Equal("0123abc", LoraConfig.Load(Path.Combine(dir, LoraAdapter.ConfigFile)).Revision);

        var noHub = o.Clone(); noHub.Revision = "main";
        Assert.Equal("model.revision", Assert.Throws<TrainConfigException>(() => noHub.Validate(checkFiles: false)).Key);
        var badHub = o.Clone(); badHub.HubId = "not a hub id";
        Assert.Equal("model.hub_id", Assert.Throws<TrainConfigException>(() => badHub.Validate(checkFiles: false)).Key);
    }
}
