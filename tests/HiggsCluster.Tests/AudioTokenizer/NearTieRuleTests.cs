using HiggsCluster.Training.AudioTokenizer;
using HiggsCluster.Training.Goldens;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace HiggsCluster.Tests.AudioTokenizer;

[Trait("Category", "AudioTokenizer")]
public sealed class NearTieRuleTests
{
    private static (Tensor Expected, Tensor Margin) Reference()
    {
        var e = arange(24, dtype: ScalarType.Int64).reshape(4, 6) % 5;  // (n_q 4, T 6)
        var m = full(4, 6, 0.01, dtype: ScalarType.Float32);
        m[1, 2] = tensor(5e-5f);                                         // a reference near-tie at codebook 1, frame 2
        return (e, m);
    }

    [Fact]
    public void Identical_codes_pass()
    {
        using var scope = torch.NewDisposeScope();
        var (e, m) = Reference();
        var o = new GoldenOutputs();
        AudioTokenizerGoldenArea.CheckCodes(o, e.clone(), e, m, 1e-4);
        Assert.Empty(o.Failures);
    }

    [Fact]
    public void Differences_from_a_near_tie_onwards_are_excused()
    {
        using var scope = torch.NewDisposeScope();
        var (e, m) = Reference();
        var a = e.clone();
        a[1, 2] = tensor(4L); a[3, 2] = tensor(0L);                      // the tie flipped and a deeper codebook followed
        var o = new GoldenOutputs();
        AudioTokenizerGoldenArea.CheckCodes(o, a, e, m, 1e-4);
        Assert.Empty(o.Failures);
    }

    [Fact]
    public void Differences_before_the_near_tie_or_in_other_frames_fail()
    {
        using var scope = torch.NewDisposeScope();
        var (e, m) = Reference();
        var a = e.clone();
        a[0, 2] = tensor(4L);                                            // codebook 0 precedes the tie at codebook 1
        a[2, 5] = tensor(4L);                                            // no tie in frame 5
        var o = new GoldenOutputs();
        AudioTokenizerGoldenArea.CheckCodes(o, a, e, m, 1e-4);
        Assert.Single(o.Failures);
        Assert.Contains("2 frame(s) differ", o.Failures[0]);
    }

    [Fact]
    public void Without_margins_codes_must_be_exact_and_shapes_equal()
    {
        using var scope = torch.NewDisposeScope();
        var (e, _) = Reference();
        var a = e.clone(); a[1, 2] = tensor(4L);
        var o = new GoldenOutputs();
        AudioTokenizerGoldenArea.CheckCodes(o, a, e, null, 1e-4);
        Assert.Single(o.Failures);
        var o2 = new GoldenOutputs();
        AudioTokenizerGoldenArea.CheckCodes(o2, e[.., ..5], e, null, 1e-4);
        Assert.Contains("shape", o2.Failures[0]);
    }
}
