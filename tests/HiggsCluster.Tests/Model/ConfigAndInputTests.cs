using System.Text.Json.Nodes;
using HiggsCluster.Training;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Model;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "Model")]
public sealed class ConfigAndInputTests
{
    private static JsonObject GoldenConfig(string caseName) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(RepoPaths.DefaultGoldens, "model", caseName, "config.json")))!.AsObject();

    [Fact]
    public void Golden_configs_parse_with_integer_flags_and_llama3_rope()
    {
        var v2 = HiggsAudioConfig.Parse(GoldenConfig("v2_like"));
        Assert.Equal(AudioAdapterType.DualFfnFastForward, v2.AdapterType);
        Assert.False(v2.UseAudioOutSelfAttention);          // stored as the integer 0
        Assert.True(v2.SkipAudioTower);
        Assert.Equal(10, v2.CodebookVocab);
        Assert.Equal("llama3", v2.Text.RopeScaling!.RopeType);
        var seed = HiggsAudioConfig.Parse(GoldenConfig("seed"));
        Assert.True(seed.UseAudioOutSelfAttention);
        Assert.Equal(16, seed.AudioEncoder!.DModel);
        Assert.Equal(new[] { 1, 2 }, seed.DualFfnLayers);
    }

    [Theory]
    [InlineData("audio_decoder_proj_num_layers", "1", "audio_decoder_proj_num_layers")]
    [InlineData("audio_adapter_type", "\"moe\"", "audio_adapter_type")]
    [InlineData("use_rq_transformer", "true", "use_rq_transformer")]
    [InlineData("audio_dual_ffn_layers", "[0, 7]", "audio_dual_ffn_layers")]
    [InlineData("use_audio_out_self_attention", "\"yes\"", "use_audio_out_self_attention")]
    public void Unsupported_or_invalid_fields_are_rejected_by_name(string field, string json, string expected)
    {
        var cfg = GoldenConfig("v2_like");
        cfg[field] = JsonNode.Parse(json);
        var e = Assert.Throws<InvalidDataException>(() => HiggsAudioConfig.Parse(cfg));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Unsupported_rope_type_is_rejected()
    {
        var cfg = GoldenConfig("v2_like");
        cfg["text_config"]!["rope_scaling"]!["rope_type"] = "yarn";
        Assert.Contains("yarn", Assert.Throws<InvalidDataException>(() => HiggsAudioConfig.Parse(cfg)).Message);
    }

    [Fact]
    public void Batch_whose_audio_segments_do_not_match_the_placeholders_is_rejected()
    {
        using var scope = NewDisposeScope();
        var cfg = TinyModels.V2Like();
        var model = TinyModels.Random(cfg);
        var good = TinyModels.TwoSamples(cfg);
        var oneSegment = new HiggsBatch
        {
            InputIds = good.InputIds, AttentionMask = good.AttentionMask, LabelIds = good.LabelIds,
            AudioOutIds = good.AudioOutIds, LabelAudioIds = good.LabelAudioIds, AudioOutIdsStart = tensor(new long[] { 0 }),
        };
        var e = Assert.Throws<InvalidDataException>(() => model.Forward(oneSegment));
        Assert.Contains("audio_out_ids_start", e.Message);
        var badCodes = new HiggsBatch
        {
            InputIds = good.InputIds, AttentionMask = good.AttentionMask,
            AudioOutIds = good.AudioOutIds! + 100, AudioOutIdsStart = good.AudioOutIdsStart,
        };
        Assert.Contains("audio_out_ids", Assert.Throws<InvalidDataException>(() => model.Forward(badCodes)).Message);
    }
}
