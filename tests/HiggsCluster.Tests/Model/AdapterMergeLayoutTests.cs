using System.Text.Json.Nodes;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

/// <summary>`higgs adapter merge` on a transformers-layout base: layout, config.json and side files of the base survive.</summary>
[Trait("Category", "Model")]
public sealed class AdapterMergeLayoutTests
{
    private static readonly string[] SideFiles =
        { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.jinja" };

    /// <summary>A transformers-layout base whose config.json has fields this port does not read, plus tokenizer files.</summary>
    private static (string Base, string Adapter) TransformersBaseAndAdapter()
    {
        var cfg = TinyModels.V2Like() with { AdapterType = AudioAdapterType.DualFfn, Layout = WeightsLayout.TransformersV2 };
        var model = TinyModels.Random(cfg, seed: 51);
        var baseDir = TinyModels.TempDir();
        ModelWeights.Save(model, baseDir);
        var configPath = Path.Combine(baseDir, "config.json");
        var json = JsonNode.Parse(File.ReadAllText(configPath))!.AsObject();
        json["torch_dtype"] = "float32";
        json["max_position_embeddings"] = 131072;
        json["bos_token"] = "<|begin_of_text|>";
        json["transformers_version"] = "5.3.0";
        File.WriteAllText(configPath, json.ToJsonString());
        foreach (var f in SideFiles) File.WriteAllText(Path.Combine(baseDir, f), $"{{\"file\": \"{f}\"}}");

        var adapter = LoraAdapter.Attach(model, new LoraConfig { R = 4, Alpha = 12, Dropout = 0 });
        using (no_grad())
        {
            var g = new Generator(52);
            foreach (var p in adapter.Parameters()) p.copy_(randn(p.shape, generator: g) * 0.2);
        }
        var adapterDir = TinyModels.TempDir();
        adapter.Save(adapterDir);
        return (baseDir, adapterDir);
    }

    private static void Merge(params string[] args)
    {
        var stdout = new StringWriter(); var stderr = new StringWriter();
        Assert.True(CommandTable.Dispatch(new[] { "adapter", "merge" }.Concat(args).ToArray(), stdout, stderr) == 0, stderr.ToString());
        Assert.Contains("transformers layout", stdout.ToString());
    }

    private static string[] Keys(string file)
    {
        using var f = new SafetensorsFile(file);
        return f.Names.OrderBy(k => k, StringComparer.Ordinal).ToArray();
    }

    [Fact]
    public void Merged_transformers_checkpoint_has_the_base_keys_and_config_and_equals_base_plus_adapter()
    {
        using var scope = NewDisposeScope();
        var (baseDir, adapterDir) = TransformersBaseAndAdapter();
        var outDir = TinyModels.TempDir();
        Merge("--base", baseDir, "--adapter", adapterDir, "--out", outDir);

        Assert.Equal(Keys(Path.Combine(baseDir, ModelWeights.SingleFile)), Keys(Path.Combine(outDir, ModelWeights.SingleFile)));
        Assert.True(JsonNode.DeepEquals(JsonNode.Parse(File.ReadAllText(Path.Combine(baseDir, "config.json"))),
            JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))));
        foreach (var f in SideFiles)
            Assert.Equal(File.ReadAllText(Path.Combine(baseDir, f)), File.ReadAllText(Path.Combine(outDir, f)));

        var merged = ModelWeights.LoadModel(outDir, ScalarType.Float32);
        Assert.Equal(WeightsLayout.TransformersV2, merged.Config.Layout);
        AdapterMergeCommandTests.AssertMergedIsBasePlusAdapter(merged, baseDir, adapterDir);
    }

    [Fact]
    public void Bf16_merge_changes_only_the_dtype_field_of_the_config()
    {
        using var scope = NewDisposeScope();
        var (baseDir, adapterDir) = TransformersBaseAndAdapter();
        var outDir = TinyModels.TempDir();
        Merge("--base", baseDir, "--adapter", adapterDir, "--out", outDir, "--dtype", "bf16");

        var before = JsonNode.Parse(File.ReadAllText(Path.Combine(baseDir, "config.json")))!.AsObject();
        var after = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "config.json")))!.AsObject();
        Assert.Equal("bfloat16", after["torch_dtype"]!.GetValue<string>());
        before["torch_dtype"] = "bfloat16";
        Assert.True(JsonNode.DeepEquals(before, after));
        Assert.Equal(ScalarType.BFloat16, ModelWeights.StoredDType(outDir));
    }

    [Fact]
    public void Interop_fixture_writes_base_adapter_and_merged_for_both_layouts()
    {
        using var scope = NewDisposeScope();
        var root = TinyModels.TempDir();
        var stdout = new StringWriter(); var stderr = new StringWriter();
        Assert.Equal(0, CommandTable.Dispatch(new[] { "adapter", "interop-fixture", "--out", root }, stdout, stderr));
        foreach (var (layout, prefix) in new[] { ("boson", "base_model.model.layers."), ("transformers", "base_model.model.model.layers.") })
        {
            var dir = Path.Combine(root, layout);
            var adapterKeys = Keys(Path.Combine(dir, "adapter", LoraAdapter.WeightsFile));
            Assert.Contains(adapterKeys, k => k.StartsWith(prefix, StringComparison.Ordinal));
            Assert.Equal(Keys(Path.Combine(dir, "base", ModelWeights.SingleFile)), Keys(Path.Combine(dir, "merged", ModelWeights.SingleFile)));
            Assert.True(File.Exists(Path.Combine(dir, "merged", "generation_config.json")));
            var model = ModelWeights.LoadModel(Path.Combine(dir, "base"), ScalarType.Float32);
            Assert.Equal(LayoutKeys.Parse(layout), model.Config.Layout);
            var adapter = LoraAdapter.Load(model, Path.Combine(dir, "adapter"));
            Assert.Contains("audio_decoder_proj.text_lm_head", adapter.ModulePaths);
        }
    }
}
