namespace HiggsCluster.Training.Goldens;

/// <summary>The golden areas this build implements. An area absent here is reported as SKIP, never as passed.</summary>
public static class GoldenAreas
{
    public static IReadOnlyDictionary<string, IGoldenArea> All(GoldenEnvironment env)
    {
        var list = new List<IGoldenArea>
        {
            // each area port registers itself here
            new WhisperGoldenArea(),
            new CollatorGoldenArea(),
            new AudioTokenizer.AudioTokenizerGoldenArea(),
            new Data.PrepareGoldenArea(env),
            new ModelGoldenArea(),
        };
        return list.ToDictionary(a => a.Name, StringComparer.Ordinal);
    }
}

/// <summary>Things some areas need from outside the golden folder (e.g. the Llama-3 vocabulary that cannot be committed).</summary>
public sealed record GoldenEnvironment(string? TextTokenizerPath)
{
    public const string TokenizerVariable = "HIGGS_TEST_TOKENIZER";

    /// <summary>HIGGS_TEST_TOKENIZER, else .testdata/llama3-higgs/tokenizer.json under the repository root.</summary>
    public static GoldenEnvironment Discover(string repoRoot)
    {
        var p = Environment.GetEnvironmentVariable(TokenizerVariable);
        if (string.IsNullOrEmpty(p)) p = Path.Combine(repoRoot, ".testdata", "llama3-higgs", "tokenizer.json");
        return new GoldenEnvironment(File.Exists(p) ? p : null);
    }
}
