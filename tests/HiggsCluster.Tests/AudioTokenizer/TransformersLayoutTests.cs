using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

[Trait("Category", "AudioTokenizer")]
public sealed class TransformersLayoutTests
{
    private static readonly string[] Inner = ["snake1", "conv1", "snake2", "conv2"];

    /// <summary>The forward renaming of transformers' convert_higgs_audio_v2_tokenizer_to_hf.py, applied rule by rule in its order.</summary>
    private static string Forward(string key)
    {
        var rules = new List<(string Pattern, MatchEvaluator Replace)>
        {
            (@"^encoder\.block\.0", _ => "acoustic_encoder.conv1"),
            (@"^encoder\.block\.6", _ => "acoustic_encoder.snake1"),
            (@"^encoder\.block\.7", _ => "acoustic_encoder.conv2"),
            (@"^encoder\.block\.(\d+)\.block\.([012])\.block\.([0123])", m => $"acoustic_encoder.block.{int.Parse(m.Groups[1].Value) - 1}.res_unit{int.Parse(m.Groups[2].Value) + 1}.{Inner[int.Parse(m.Groups[3].Value)]}"),
            (@"^encoder\.block\.(\d+)\.block\.3", m => $"acoustic_encoder.block.{int.Parse(m.Groups[1].Value) - 1}.snake1"),
            (@"^encoder\.block\.(\d+)\.block\.4", m => $"acoustic_encoder.block.{int.Parse(m.Groups[1].Value) - 1}.conv1"),
            (@"^decoder_2\.model\.0", _ => "acoustic_decoder.conv1"),
            (@"^decoder_2\.model\.6", _ => "acoustic_decoder.snake1"),
            (@"^decoder_2\.model\.7", _ => "acoustic_decoder.conv2"),
            (@"^decoder_2\.model\.(\d+)\.block\.0", m => $"acoustic_decoder.block.{int.Parse(m.Groups[1].Value) - 1}.snake1"),
            (@"^decoder_2\.model\.(\d+)\.block\.1", m => $"acoustic_decoder.block.{int.Parse(m.Groups[1].Value) - 1}.conv_t1"),
            (@"^decoder_2\.model\.(\d+)\.block\.([234])\.block\.([0123])", m => $"acoustic_decoder.block.{int.Parse(m.Groups[1].Value) - 1}.res_unit{int.Parse(m.Groups[2].Value) - 1}.{Inner[int.Parse(m.Groups[3].Value)]}"),
            (@"^quantizer\.vq\.layers", _ => "quantizer.quantizers"),
            (@"\._codebook\.", _ => ".codebook."),
            (@"^fc_prior\.", _ => "fc."),
            (@"^fc_post1\.", _ => "fc1."),
            (@"^fc_post2\.", _ => "fc2."),
            (@"\.conv\.conv\.", _ => ".conv."),
            (@"\.conv1\.conv\.", _ => ".conv1."),
            (@"\.conv2\.conv\.", _ => ".conv2."),
        };
        foreach (var (p, r) in rules) key = Regex.Replace(key, p, r);
        return key;
    }

    [Fact]
    public void Transformers_layout_gives_the_same_codes_as_the_original_layout()
    {
        using var scope = torch.NewDisposeScope();
        var original = SafetensorsFile.ReadAll(Path.Combine(TinyTokenizerFixture.Dir, TokenizerWeights.SafetensorsFileName));
        var converted = new Dictionary<string, Tensor>();
        foreach (var (k, v) in original)
        {
            if (k.EndsWith(".weight_v")) continue;
            if (k.EndsWith(".weight_g"))
            {
                var stem = k[..^".weight_g".Length];
                var wv = original[stem + ".weight_v"];
                converted[Forward(stem + ".weight")] = v * wv / wv.reshape(wv.shape[0], -1).norm(1, true, 2).reshape(v.shape);
                continue;
            }
            converted[Forward(k)] = v;
        }
        Assert.Contains("acoustic_decoder.block.0.conv_t1.weight", converted.Keys);
        Assert.Contains("encoder_semantic.conv_blocks.1.res_units.0.conv1.weight", converted.Keys);
        var s = TinyTokenizerWriter.TinySizes;
        var cfg = new JsonObject
        {
            ["model_type"] = "higgs_audio_v2_tokenizer",
            ["sample_rate"] = 24000, ["semantic_sample_rate"] = 16000, ["downsample_factor"] = 320,
            ["codebook_size"] = s.Bins, ["codebook_dim"] = s.CodebookDim,
            ["target_bandwidths"] = new JsonArray(0.5, 1.0),   // 1000·1.0 // (25 frames/s · 5 bits) = 8 codebooks
            ["acoustic_model_config"] = new JsonObject
            {
                ["model_type"] = "dac", ["encoder_hidden_size"] = s.EncoderWidth, ["decoder_hidden_size"] = s.DecoderWidth,
                ["hidden_size"] = s.D, ["downsampling_ratios"] = new JsonArray(8, 5, 4, 2, 3), ["upsampling_ratios"] = new JsonArray(8, 5, 4, 2, 3),
                ["hop_length"] = 960,
            },
            ["semantic_model_config"] = s.Hubert.ToJson(),
        };
        var dir = TinyTokenizerFixture.NewTempDir("tok-transformers");
        File.WriteAllText(Path.Combine(dir, "config.json"), cfg.ToJsonString());
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), converted);

        using var tok = HiggsAudioTokenizer.Load(dir);
        Assert.Equal(8, tok.Sizes.NQ);
        var reference = TinyTokenizerFixture.Model;
        var x = tensor(TinyTokenizerFixture.Wave(7205)).unsqueeze(0);
        using var a = reference.EncodeBatch(x);
        using var b = tok.EncodeBatch(x);
        Assert.True(a.PrequantLatent.allclose(b.PrequantLatent, 1e-4, 1e-5));
        Assert.Equal(TinyTokenizerFixture.Longs(a.Codes), TinyTokenizerFixture.Longs(b.Codes));
        var codes = a.Codes[0];
        Assert.True(reference.Decode(codes).allclose(tok.Decode(codes), 1e-4, 1e-5));
    }

    [Fact]
    public void Transformers_keys_with_an_original_config_are_refused()
    {
        using var scope = torch.NewDisposeScope();
        var dir = TinyTokenizerFixture.NewTempDir("tok-mixed");
        File.Copy(Path.Combine(TinyTokenizerFixture.Dir, "config.json"), Path.Combine(dir, "config.json"));
        SafetensorsWriter.Write(Path.Combine(dir, "model.safetensors"), new Dictionary<string, Tensor> { ["acoustic_encoder.conv1.weight"] = zeros(2, 1, 7) });
        var e = Assert.Throws<InvalidDataException>(() => TokenizerWeights.Load(dir));
        Assert.Contains("transformers", e.Message);
    }
}
