using HiggsCluster.Training.AudioTokenizer;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace HiggsCluster.Tests.AudioTokenizer;

/// <summary>The fast CPU conv paths compute the same convolution as libtorch's conv1d, up to float summation order.</summary>
[Trait("Category", "AudioTokenizer")]
public sealed class CpuConvTests
{
    private static void AssertClose(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        double scale = Math.Max(1.0, expected.abs().max().item<float>());
        double diff = (expected - actual).abs().max().item<float>();
        Assert.True(diff <= 2e-5 * scale, $"max |diff| {diff:E2} at scale {scale:F2}");
    }

    private static (Tensor X, Tensor W, Tensor B) Case(long batch, long c, long o, long k, long l, long groups = 1)
    {
        var g = new Generator(0);
        var x = randn([batch, c, l], generator: g);
        var w = randn([o, c / groups, k], generator: g) / Math.Sqrt(c / groups * k);
        var b = randn([o], generator: g);
        return (x, w, b);
    }

    // the DAC encoder's residual convs (k7, dilation 1/3/9, padding 3d) and strided down-convs (k = 2s, padding ceil(s/2)),
    // HuBERT's feature convs (k10 s5 on one channel, k3/k2 s2 without padding) and the DAC's first conv (one channel, k7 p3)
    [Theory]
    [InlineData(2, 6, 6, 7, 50, 1, 3, 1)]
    [InlineData(2, 6, 6, 7, 50, 1, 9, 3)]
    [InlineData(1, 6, 6, 7, 90, 1, 27, 9)]
    [InlineData(2, 4, 8, 16, 83, 8, 4, 1)]
    [InlineData(1, 4, 8, 10, 61, 5, 3, 1)]
    [InlineData(2, 8, 16, 6, 31, 3, 2, 1)]
    [InlineData(1, 8, 16, 4, 30, 2, 1, 1)]
    [InlineData(2, 1, 8, 10, 97, 5, 0, 1)]
    [InlineData(1, 1, 8, 7, 40, 1, 3, 1)]
    [InlineData(1, 8, 8, 3, 41, 2, 0, 1)]
    [InlineData(1, 8, 8, 2, 20, 2, 0, 1)]
    public void Im2col_sgemm_equals_conv1d(long batch, long c, long o, long k, long l, long stride, long padding, long dilation)
    {
        using var scope = torch.NewDisposeScope();
        var (x, w, b) = Case(batch, c, o, k, l);
        AssertClose(F.conv1d(x, w, b, stride, padding, dilation), CpuConv.Im2colSgemm(x, w, b, stride, padding, dilation));
        AssertClose(F.conv1d(x, w, null, stride, padding, dilation), CpuConv.Im2colSgemm(x, w, null, stride, padding, dilation));
        AssertClose(F.conv1d(x, w, b, stride, padding, dilation), CpuConv.Conv1d(x, w, b, stride, padding, dilation));
    }

    [Theory]
    [InlineData(1, 64, 64, 300)]
    [InlineData(2, 5, 7, 13)]
    public void Pointwise_equals_kernel_one_conv1d(long batch, long c, long o, long l)
    {
        using var scope = torch.NewDisposeScope();
        var (x, w, b) = Case(batch, c, o, 1, l);
        AssertClose(F.conv1d(x, w, b), CpuConv.Pointwise(x, w, b));
        AssertClose(F.conv1d(x, w, null), CpuConv.Conv1d(x, w, null));
    }

    [Fact]
    public void Linear_equals_F_linear_on_batch_time_features()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(1);
        var x = randn([2, 9, 24], generator: g);
        var w = randn([40, 24], generator: g) / 5;
        var b = randn([40], generator: g);
        var y = CpuConv.Linear(x, w, b);
        AssertClose(F.linear(x, w, b), y);
        Assert.True(y.is_contiguous());
        AssertClose(F.linear(x, w, null), CpuConv.Linear(x, w, null));
    }

    [Fact]
    public void Grouped_conv_like_the_hubert_positional_conv_is_unchanged()
    {
        using var scope = torch.NewDisposeScope();
        var (x, w, b) = Case(1, 16, 16, 8, 25, groups: 4);
        AssertClose(F.conv1d(x, w, b, padding: 4, groups: 4), CpuConv.Conv1d(x, w, b, padding: 4, groups: 4));
    }

    [Fact]
    public void A_conv_with_weights_over_the_reorder_limit_takes_im2col_and_matches_conv1d()
    {
        using var scope = torch.NewDisposeScope();
        // the DAC encoder's 1024→2048 k6 stride-3 conv (50 MB of weights) on a short input
        var (x, w, b) = Case(1, 1024, 2048, 6, 24);
        Assert.True(w.NumberOfElements * w.ElementSize > CpuConv.ReorderLimitBytes);
        AssertClose(F.conv1d(x, w, b, stride: 3, padding: 2), CpuConv.Conv1d(x, w, b, stride: 3, padding: 2));
    }

    [Fact]
    public void Too_short_input_is_refused_with_its_length()
    {
        using var scope = torch.NewDisposeScope();
        var (x, w, b) = Case(1, 2, 2, 7, 3);
        var e = Assert.Throws<ArgumentException>(() => CpuConv.Im2colSgemm(x, w, b));
        Assert.Contains("3 samples", e.Message);
    }

    [Fact]
    public void In_place_snake_is_bitwise_equal_to_the_plain_expression()
    {
        using var scope = torch.NewDisposeScope();
        var g = new Generator(2);
        var x = randn([2, 6, 50], generator: g) * 3;
        var alpha = rand([1, 6, 1], generator: g) * 2;
        alpha[0, 0, 0] = tensor(1e-12f); // a tiny alpha, where the 1e-9 epsilon matters
        var plain = x + (alpha + 1e-9).reciprocal() * sin(alpha * x).pow(2);
        var before = x.clone();
        var fused = DacCodec.Snake(x, alpha);
        Assert.True(plain.eq(fused).all().item<bool>());
        Assert.True(before.eq(x).all().item<bool>()); // the input is left alone
    }
}
