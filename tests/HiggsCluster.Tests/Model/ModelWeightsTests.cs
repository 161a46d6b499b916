using System.Text.Json.Nodes;
using HiggsCluster.Training;
using HiggsCluster.Training.IO;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "Model")]
public sealed class ModelWeightsTests
{
    [Theory]
    [InlineData("seed")]
    [InlineData("v2_like")]
    [InlineData("v2_fastforward")]
    public void State_dict_keys_equal_the_golden_checkpoint_keys(string caseName)
    {
        using var scope = NewDisposeScope();
        var dir = Path.Combine(RepoPaths.DefaultGoldens, "model", caseName);
        var model = ModelWeights.LoadModel(dir, ScalarType.Float32);
        using var f = new SafetensorsFile(Path.Combine(dir, "model.safetensors"));
        Assert.Equal(f.Names.OrderBy(x => x, StringComparer.Ordinal), model.state_dict().Keys.OrderBy(x => x, StringComparer.Ordinal));
    }

    [Fact]
    public void Save_then_load_reproduces_the_weights_and_the_logits()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var a = TinyModels.Random(cfg, seed: 3);
        var dir = TinyModels.TempDir();
        ModelWeights.Save(a, dir);
        var b = ModelWeights.LoadModel(dir, ScalarType.Float32);
        var batch = TinyModels.TwoSamples(cfg);
        using (no_grad())
            Assert.True(Same(a.Forward(batch).Logits, b.Forward(batch).Logits));
    }

    [Fact]
    public void Missing_key_is_an_error_naming_it()
    {
        using var scope = NewDisposeScope();
        var dir = TinyModels.TempDir();
        ModelWeights.Save(TinyModels.Random(TinyModels.V2Like()), dir);
        Rewrite(dir, d => d.Remove("layers.1.audio_mlp.up_proj.weight"));
        var e = Assert.Throws<InvalidDataException>(() => ModelWeights.LoadModel(dir, ScalarType.Float32));
        Assert.Contains("missing", e.Message);
        Assert.Contains("layers.1.audio_mlp.up_proj.weight", e.Message);
    }

    [Fact]
    public void Unexpected_key_is_an_error_naming_it_but_rotary_buffers_are_ignored()
    {
        using var scope = NewDisposeScope();
        var dir = TinyModels.TempDir();
        ModelWeights.Save(TinyModels.Random(TinyModels.V2Like()), dir);
        Rewrite(dir, d => d["layers.0.rotary_emb.inv_freq"] = zeros(4));
        ModelWeights.LoadModel(dir, ScalarType.Float32);
        Rewrite(dir, d => d["layers.0.audio_attn.q_proj.weight"] = zeros(32, 32));
        var e = Assert.Throws<InvalidDataException>(() => ModelWeights.LoadModel(dir, ScalarType.Float32));
        Assert.Contains("unexpected", e.Message);
        Assert.Contains("layers.0.audio_attn.q_proj.weight", e.Message);
    }

    [Fact]
    public void Wrong_shape_is_an_error_naming_the_key()
    {
        using var scope = NewDisposeScope();
        var dir = TinyModels.TempDir();
        ModelWeights.Save(TinyModels.Random(TinyModels.V2Like()), dir);
        Rewrite(dir, d => d["norm.weight"] = ones(31));
        var e = Assert.Throws<InvalidDataException>(() => ModelWeights.LoadModel(dir, ScalarType.Float32));
        Assert.Contains("norm.weight", e.Message);
    }

    [Fact]
    public void Sharded_index_loads_like_the_single_file()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var a = TinyModels.Random(cfg, seed: 5);
        var dir = TinyModels.TempDir();
        ModelWeights.Save(a, dir);
        var all = SafetensorsFile.ReadAll(Path.Combine(dir, ModelWeights.SingleFile));
        File.Delete(Path.Combine(dir, ModelWeights.SingleFile));
        var keys = all.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        var map = new JsonObject();
        for (int s = 0; s < 2; s++)
        {
            var name = $"model-0000{s + 1}-of-00002.safetensors";
            var part = keys.Where((_, i) => i % 2 == s).ToList();
            SafetensorsWriter.Write(Path.Combine(dir, name), part.Select(k => new KeyValuePair<string, Tensor>(k, all[k])));
            foreach (var k in part) map[k] = name;
        }
        File.WriteAllText(Path.Combine(dir, ModelWeights.IndexFile), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = map }.ToJsonString());
        var b = ModelWeights.LoadModel(dir, ScalarType.Float32);
        var pb = b.BaseParameters().ToDictionary(p => p.Name, p => p.Param);
        foreach (var (n, p) in a.BaseParameters()) Assert.True(Same(p, pb[n]), n);
    }

    [Fact]
    public void Transformers_v2_layout_gives_the_same_logits_as_the_boson_layout()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like() with { AdapterType = AudioAdapterType.DualFfn };
        var a = TinyModels.Random(cfg, seed: 9);
        var bosonDir = TinyModels.TempDir();
        ModelWeights.Save(a, bosonDir);

        var v2Dir = TinyModels.TempDir();
        var t = cfg.Text;
        var flat = new JsonObject
        {
            ["model_type"] = "higgs_audio_v2", ["vocab_size"] = t.VocabSize, ["hidden_size"] = t.HiddenSize,
            ["intermediate_size"] = t.IntermediateSize, ["num_hidden_layers"] = t.NumHiddenLayers,
            ["num_attention_heads"] = t.NumAttentionHeads, ["num_key_value_heads"] = t.NumKeyValueHeads, ["head_dim"] = t.HeadDim,
            ["rms_norm_eps"] = t.RmsNormEps, ["hidden_act"] = "silu",
            ["rope_parameters"] = new JsonObject { ["rope_type"] = "llama3", ["rope_theta"] = t.RopeTheta, ["factor"] = 32.0, ["low_freq_factor"] = 0.125, ["high_freq_factor"] = 0.5, ["original_max_position_embeddings"] = 1024 },
            ["num_codebooks"] = cfg.AudioNumCodebooks, ["codebook_size"] = cfg.AudioCodebookSize + 2,
            ["audio_token_id"] = TinyModels.AudioOut, ["audio_in_token_id"] = TinyModels.AudioIn, ["pad_token_id"] = TinyModels.Pad,
        };
        File.WriteAllText(Path.Combine(v2Dir, "config.json"), flat.ToJsonString());
        var renamed = SafetensorsFile.ReadAll(Path.Combine(bosonDir, ModelWeights.SingleFile)).Select(kv =>
        {
            var k = kv.Key;
            var nk = k.StartsWith("audio_codebook_embeddings.") ? "model.embed_audio_tokens.embed_audio_tokens." + k["audio_codebook_embeddings.".Length..]
                : k.StartsWith("audio_decoder_proj.") ? k["audio_decoder_proj.".Length..] : "model." + k;
            return new KeyValuePair<string, Tensor>(nk, kv.Value);
        }).ToList();
        Assert.Contains(renamed, kv => kv.Key == "text_lm_head.weight");
        SafetensorsWriter.Write(Path.Combine(v2Dir, ModelWeights.SingleFile), renamed);

        var b = ModelWeights.LoadModel(v2Dir, ScalarType.Float32);
        Assert.Equal(WeightsLayout.TransformersV2, b.Config.Layout);
        var batch = TinyModels.TwoSamples(cfg);
        using (no_grad())
        {
            var ra = a.Forward(batch); var rb = b.Forward(batch);
            // The two rope parameter sets differ by a power of two in every term, so inv_freq and logits are identical.
            Assert.True(Same(ra.Logits, rb.Logits));
            Assert.True(Same(ra.AudioLogits, rb.AudioLogits));
        }
    }

    private static void Rewrite(string dir, Action<Dictionary<string, Tensor>> edit)
    {
        var path = Path.Combine(dir, ModelWeights.SingleFile);
        var d = SafetensorsFile.ReadAll(path);
        edit(d);
        File.Delete(path);
        SafetensorsWriter.Write(path, d);
    }

    private static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();
}
