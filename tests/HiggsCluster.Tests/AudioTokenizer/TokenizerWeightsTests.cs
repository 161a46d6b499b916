using HiggsCluster.Training;
using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.IO;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

[Trait("Category", "AudioTokenizer")]
public sealed class TokenizerWeightsTests
{
    private static string GoldenTokenizerDir => Path.Combine(RepoPaths.DefaultGoldens, "audio_tokenizer", "tiny_tokenizer");

    [Fact]
    public void Writer_layout_equals_the_golden_checkpoint_layout()
    {
        var golden = Path.Combine(GoldenTokenizerDir, "model.safetensors");
        if (!File.Exists(golden)) Assert.Skip("golden tiny tokenizer not present");
        using var f = new SafetensorsFile(golden);
        var layout = TokenizerKeyLayout.Build(TinyTokenizerWriter.TinySizes);
        Assert.Equal(442, layout.Count);
        Assert.Equal(f.Entries.Keys.OrderBy(k => k, StringComparer.Ordinal), layout.Select(k => k.Name).OrderBy(k => k, StringComparer.Ordinal));
        foreach (var k in layout) Assert.Equal(f.Entries[k.Name].Shape, k.Shape);
    }

    [Fact]
    public void Golden_model_pth_and_safetensors_fold_to_the_same_weights()
    {
        if (!File.Exists(Path.Combine(GoldenTokenizerDir, "model.pth"))) Assert.Skip("golden tiny tokenizer not present");
        using var scope = torch.NewDisposeScope();
        using var a = TokenizerWeights.Load(GoldenTokenizerDir, "model.pth");
        using var b = TokenizerWeights.Load(GoldenTokenizerDir, "model.safetensors");
        Assert.Equal(a.Identity, b.Identity);
        Assert.Equal(2, a.Sizes.EncoderWidth);
        Assert.Equal(32, a.Sizes.DecoderWidth);
        Assert.Equal(32, a.Sizes.SemanticDim);
    }

    [Fact]
    public void Written_pth_and_safetensors_give_identical_codes()
    {
        using var scope = torch.NewDisposeScope();
        var dir = TinyTokenizerFixture.Dir;
        using var pth = HiggsAudioTokenizer.Load(dir, TokenizerWeights.PthFileName);
        var st = TinyTokenizerFixture.Model;
        Assert.Equal(st.Weights.Identity, pth.Weights.Identity);
        var wave = TinyTokenizerFixture.Wave(3000);
        Assert.Equal(TinyTokenizerFixture.Longs(st.Encode(wave)), TinyTokenizerFixture.Longs(pth.Encode(wave)));
    }

    private static string WriteVariant(Action<Dictionary<string, Tensor>> edit)
    {
        var dir = TinyTokenizerFixture.NewTempDir("tok-variant");
        foreach (var f in new[] { TokenizerWeights.ConfigFile, TokenizerWeights.HubertConfigFile })
            File.Copy(Path.Combine(TinyTokenizerFixture.Dir, f), Path.Combine(dir, f));
        var sd = SafetensorsFile.ReadAll(Path.Combine(TinyTokenizerFixture.Dir, TokenizerWeights.SafetensorsFileName));
        edit(sd);
        SafetensorsWriter.Write(Path.Combine(dir, TokenizerWeights.SafetensorsFileName), sd);
        return dir;
    }

    [Fact]
    public void Missing_unexpected_and_misshaped_keys_are_listed()
    {
        using var scope = torch.NewDisposeScope();
        var dir = WriteVariant(sd =>
        {
            sd.Remove("encoder.block.1.block.4.weight_g");
            sd["encoder.extra.weight"] = zeros(3);
            sd["fc_prior.bias"] = zeros(5);
        });
        var e = Assert.Throws<InvalidDataException>(() => TokenizerWeights.Load(dir));
        Assert.Contains("missing keys (1): encoder.block.1.block.4.weight_g", e.Message);
        Assert.Contains("unexpected keys (1): encoder.extra.weight", e.Message);
        Assert.Contains("fc_prior.bias: shape [5]", e.Message);
    }

    [Fact]
    public void Training_only_keys_may_be_absent()
    {
        using var scope = torch.NewDisposeScope();
        var dir = WriteVariant(sd =>
        {
            foreach (var k in sd.Keys.Where(k => k.StartsWith("decoder_semantic.") || k.StartsWith("fc_post1.") || k.EndsWith("embed_avg")).ToList())
                sd.Remove(k);
        });
        using var ck = TokenizerWeights.Load(dir);
        Assert.Equal(TinyTokenizerFixture.Model.Weights.Identity, ck.Identity);
    }

    [Fact]
    public void Uninitialised_codebook_is_refused()
    {
        using var scope = torch.NewDisposeScope();
        var dir = WriteVariant(sd => sd["quantizer.vq.layers.3._codebook.inited"] = zeros(1));
        var e = Assert.Throws<InvalidDataException>(() => TokenizerWeights.Load(dir));
        Assert.Contains("quantizer.vq.layers.3._codebook.inited", e.Message);
    }

    [Fact]
    public void Weight_norm_of_a_transposed_conv_is_per_input_channel()
    {
        using var scope = torch.NewDisposeScope();
        var v = randn(4, 3, 6, generator: new torch.Generator(2));   // (in, out, k)
        var g = tensor(new[] { 0.5f, 1.5f, 2f, 3f }).reshape(4, 1, 1);
        var w = TokenizerWeights.FoldWeightNormDim0(g, v);
        var norms = w.reshape(4, -1).norm(1, false, 2);
        Assert.True(norms.allclose(g.reshape(4), 1e-5, 1e-5));
        // direction is v's, per input channel
        var dir = v.reshape(4, -1) / v.reshape(4, -1).norm(1, true, 2);
        Assert.True((w.reshape(4, -1) / g.reshape(4, 1)).allclose(dir, 1e-5, 1e-5));
    }

    [Fact]
    public void Positional_conv_weight_norm_is_per_kernel_tap()
    {
        using var scope = torch.NewDisposeScope();
        var v = randn(6, 2, 5, generator: new torch.Generator(3));
        var g = tensor(new[] { 0.1f, 0.2f, 0.3f, 0.4f, 0.5f }).reshape(1, 1, 5);
        var w = TokenizerWeights.FoldWeightNormLastDim(g, v);
        for (int k = 0; k < 5; k++)
            Assert.Equal(g[0, 0, k].item<float>(), w[.., .., k].norm().item<float>(), 5);
    }

    [Fact]
    public void Sizes_come_from_weight_shapes_not_from_constants()
    {
        var s = TinyTokenizerFixture.Model.Sizes;
        Assert.Equal(2, s.EncoderWidth);
        Assert.Equal(32, s.DecoderWidth);
        Assert.Equal(48, s.QuantizerDim);
        Assert.Equal(2, s.SemanticDownsampleFactor);
        Assert.Equal(320, s.RepadSamples);
    }
}
