using HiggsCluster.Training;
using Xunit;

namespace HiggsCluster.Tests.Source;

/// <summary>
/// Every scalar argument to a TorchSharp op in src/ is a Scalar somebody holds for the call (a cached static or a
/// `using var`), never one converted from a C# number on the spot: TorchSharp 0.107 can finalize such a temporary
/// while libtorch still reads it (native abort in Scalar.h, or a silently wrong value).
/// </summary>
public class NoImplicitScalarTests
{
    [Fact]
    public void No_source_file_in_src_converts_a_number_to_a_Scalar()
    {
        var r = ScalarConversionFinder.ScanProjects(Path.Combine(RepoPaths.Root, "src"));
        // a compilation with errors could hide call sites (an unbound call has no conversion): refuse it
        Assert.True(r.Errors.Count == 0, "src/ did not compile in the scan:\n" + string.Join("\n", r.Errors.Take(20)));
        Assert.True(r.Sites.Count == 0,
            $"{r.Sites.Count} conversions to TorchSharp.Scalar in src/ (hold a static readonly Scalar or `using var s = x.ToScalar()`):\n"
            + string.Join("\n", r.Sites));
    }

    [Fact]
    public void The_scan_finds_implicit_and_cast_conversions_and_accepts_held_scalars()
    {
        const string code = """
            using TorchSharp;
            using static TorchSharp.torch;
            static class Ops
            {
                private static readonly Scalar Two = 2.0.ToScalar();
                static Tensor Implicit(Tensor x) => x.pow(2);
                static Tensor Operator(Tensor x) => x * 0.5;
                static Tensor Cast(Tensor x) => x.add((Scalar)1.0f);
                static Tensor Lambda(Tensor x) { System.Func<Tensor, Tensor> f = t => nn.functional.elu(t, 1.0); return f(x); }
                static Tensor Held(Tensor x) { using var h = 3.ToScalar(); return x.pow(Two).mul(h); }
                static Tensor TensorOperand(Tensor x, Tensor y) => x * y;
            }
            """;
        var r = ScalarConversionFinder.Scan("Probe", [("Probe.cs", code)]);

        Assert.Empty(r.Errors);
        // the hidden conversions are found in TorchSharp's IL: Tensor * double and functional.elu(x, double) among them
        Assert.True(TorchScalarTemporaries.Count > 20, $"only {TorchScalarTemporaries.Count} TorchSharp methods found converting inside");
        var lines = r.Sites.Select(s => int.Parse(s.Split(':')[1])).Distinct().Order().ToArray();
        Assert.Equal([6, 7, 8, 9], lines);
    }
}
