using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

[Trait("Category", "AudioTokenizer")]
public sealed class AudioTokenizerDecodeTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(5)]
    [InlineData(13)]
    public void Decode_gives_960_samples_per_frame(int frames)
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        var codes = randint(0, m.Sizes.Bins, [8, frames], dtype: ScalarType.Int64, generator: new torch.Generator(11));
        var wave = m.Decode(codes);
        Assert.Equal(new long[] { 960L * frames }, wave.shape);
        Assert.True(wave.isfinite().all().item<bool>());
    }

    [Fact]
    public void Decoded_latent_is_the_sum_of_projected_codebook_vectors()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        var w = m.Weights;
        var codes = randint(0, m.Sizes.Bins, [1, 8, 4], dtype: ScalarType.Int64, generator: new torch.Generator(5));
        var (_, deq, dec) = m.DecodeDetailed(codes);
        var sum = zeros(4, m.Sizes.QuantizerDim);
        for (int q = 0; q < 8; q++)
        {
            var e = w[$"quantizer.vq.layers.{q}._codebook.embed"].index_select(0, codes[0, q]);
            sum += e.matmul(w[$"quantizer.vq.layers.{q}.project_out.weight"].t()) + w[$"quantizer.vq.layers.{q}.project_out.bias"];
        }
        Assert.True(sum.t().allclose(deq[0], 1e-5, 1e-5));
        Assert.Equal(new long[] { 1, m.Sizes.D, 4 }, dec.shape);
    }

    [Fact]
    public void Decode_refuses_out_of_range_codes_and_wrong_codebook_counts()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        Assert.Throws<ArgumentException>(() => m.Decode(full(8, 3, m.Sizes.Bins, dtype: ScalarType.Int64)));
        Assert.Throws<ArgumentException>(() => m.Decode(full(8, 3, -1, dtype: ScalarType.Int64)));
        Assert.Throws<ArgumentException>(() => m.Decode(zeros(7, 3, dtype: ScalarType.Int64)));
    }

    [Fact]
    public void Encode_then_decode_round_trip_has_the_expected_length()
    {
        using var scope = torch.NewDisposeScope();
        var m = TinyTokenizerFixture.Model;
        var codes = m.Encode(TinyTokenizerFixture.Wave(24_000));
        Assert.Equal(25, codes.shape[1]);
        Assert.Equal(24_000, m.Decode(codes).shape[0]);
    }
}
