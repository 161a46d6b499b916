using HiggsCluster.Training;
using HiggsCluster.Training.Goldens;
using HiggsCluster.Training.Text;
using Xunit;

namespace HiggsCluster.Tests.Text;

/// <summary>
/// The Llama-3 vocabulary with Higgs added-token names, built by scripts/fetch-test-assets.sh (it cannot be committed).
/// Absent: the test is skipped locally, but fails on CI (CI=true), where the script always runs first.
/// </summary>
public static class TestTokenizer
{
    private static readonly Lazy<TextTokenizer?> Shared = new(() => PathOrNull is { } p ? TextTokenizer.Load(p) : null);

    public static string? PathOrNull => GoldenEnvironment.Discover(RepoPaths.Root).TextTokenizerPath;

    public const string MissingMessage =
        "the Llama-3/Higgs test vocabulary is missing: run scripts/fetch-test-assets.sh (or set HIGGS_TEST_TOKENIZER)";

    public static string Path()
    {
        var p = PathOrNull;
        if (p != null) return p;
        if (Environment.GetEnvironmentVariable("CI") == "true") Assert.Fail(MissingMessage);
        Assert.Skip(MissingMessage);
        return null!;
    }

    public static TextTokenizer Get()
    {
        Path();
        return Shared.Value!;
    }
}
