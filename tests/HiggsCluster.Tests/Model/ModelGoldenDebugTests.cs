using HiggsCluster.Training;
using HiggsCluster.Training.Goldens;
using Xunit;

namespace HiggsCluster.Tests.Model;

[Trait("Category", "ModelDebug")]
public sealed class ModelGoldenDebugTests(ITestOutputHelper log)
{
    [Fact]
    public void Debug_first_run()
    {
        var run = GoldenHarness.Enumerate(new[] { RepoPaths.DefaultGoldens }, "model").First(r => r.Label.Contains(Environment.GetEnvironmentVariable("DBG_RUN") ?? "v2_like/forward_batch3"));
        var o = new ModelGoldenArea().Compute(run);
        var exp = run.LoadExpected();
        var key = Environment.GetEnvironmentVariable("DBG_KEY");
        if (key is null) return;
        long idx = long.Parse(Environment.GetEnvironmentVariable("DBG_IDX") ?? "0");
        foreach (var pre in new[] { "grad.", "updated." })
            log.WriteLine($"{pre}: ours {o.Tensors[pre + key].flatten()[idx].item<float>():G9} expected {exp[pre + key].flatten()[idx].item<float>():G9}");
        log.WriteLine($"grad_norm ours {o.Tensors["grad_norm"].item<float>():G9} exp {exp["grad_norm"].item<float>():G9}");
    }
}
