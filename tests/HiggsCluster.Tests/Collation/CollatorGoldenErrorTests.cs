using HiggsCluster.Training;
using HiggsCluster.Training.Collation;
using HiggsCluster.Training.Goldens;
using Xunit;

namespace HiggsCluster.Tests.Collation;

/// <summary>The collator golden runs where upstream raises must fail for the same reason here, not for any reason.</summary>
[Trait("Category", "Collator")]
public sealed class CollatorGoldenErrorTests
{
    [Fact]
    public void Upstream_index_errors_are_reproduced_as_UpstreamIndexException()
    {
        if (!Directory.Exists(Path.Combine(RepoPaths.DefaultGoldens, "collator"))) Assert.Skip("no collator goldens");
        var runs = GoldenHarness.Enumerate(new[] { RepoPaths.DefaultGoldens }, "collator")
            .Where(r => r.ExpectError?["type"]?.GetValue<string>() == "IndexError").ToList();
        if (runs.Count == 0) Assert.Skip("no collator run expects an IndexError");
        var area = new CollatorGoldenArea();
        foreach (var run in runs)
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            var e = Assert.Throws<UpstreamIndexException>(() => area.Compute(run));
            var message = run.ExpectError!["message"]?.GetValue<string>();
            if (message is not null) Assert.Contains(message, e.Message);
        }
    }
}
