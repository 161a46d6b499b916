using HiggsCluster.Training;
using HiggsCluster.Training.Goldens;
using Xunit;

namespace HiggsCluster.Tests.Goldens;

/// <summary>Every run of every case under ../shared/goldens and HIGGS_EXTRA_GOLDENS, one test case per run.</summary>
[Trait("Category", "Golden")]
public sealed class GoldenParityTests
{
    private static readonly Lazy<Dictionary<string, GoldenRun>> RunsByLabel = new(() =>
        GoldenHarness.Enumerate(GoldenHarness.ResolveRoots(null, RepoPaths.DefaultGoldens))
            .ToDictionary(r => r.Label, r => r, StringComparer.Ordinal));

    private static readonly Lazy<IReadOnlyDictionary<string, IGoldenArea>> Areas = new(() =>
        GoldenAreas.All(GoldenEnvironment.Discover(RepoPaths.Root)));

    public static TheoryData<string> Runs()
    {
        var data = new TheoryData<string>();
        foreach (var label in RunsByLabel.Value.Keys) data.Add(label);
        return data;
    }

    [Theory]
    [MemberData(nameof(Runs))]
    public void Run_matches_golden(string label)
    {
        var result = GoldenHarness.Check(RunsByLabel.Value[label], Areas.Value);
        if (result.Status == GoldenStatus.Skip) Assert.Skip(result.Detail);
        Assert.True(result.Status == GoldenStatus.Pass, result.Line);
    }

    [Fact]
    public void Harness_finds_every_area_folder()
    {
        var areas = RunsByLabel.Value.Values.Select(r => r.Area).ToHashSet();
        foreach (var dir in Directory.GetDirectories(RepoPaths.DefaultGoldens))
            Assert.Contains(Path.GetFileName(dir), areas);
    }
}
