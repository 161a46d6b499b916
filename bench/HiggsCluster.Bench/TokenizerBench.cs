using System.Diagnostics;
using System.Globalization;
using HiggsCluster.Training;
using HiggsCluster.Training.Text;

namespace HiggsCluster.Bench;

/// <summary>
/// `higgs-bench tokenizer`: our Llama-3 text tokenizer against Hugging Face's Rust tokenizers (through Tokenizers.DotNet)
/// on the same corpus: every non-empty line of the repository's markdown, C# and Python files (about 1 MB of English
/// prose and code), encoded one line per call as transcripts are.
/// Needs the vocabulary from scripts/fetch-test-assets.sh.
/// </summary>
internal static class TokenizerBench
{
    public static int Run(BenchArgs a)
    {
        int repeats = a.Int("repeat", 5);
        var path = a.Str("tokenizer", Path.Combine(RepoPaths.Root, ".testdata", "llama3-higgs", "tokenizer.json"));
        if (!File.Exists(path))
        {
            Console.WriteLine($"tokenizer: SKIPPED, {path} is missing (run scripts/fetch-test-assets.sh)");
            return 0;
        }
        var lines = Corpus(RepoPaths.Root);
        long chars = lines.Sum(l => (long)l.Length);
        var ours = TextTokenizer.Load(path);
        using var hf = new Tokenizers.DotNet.Tokenizer(path);
        long oursTokens = 0, hfTokens = 0; int differ = 0;
        foreach (var l in lines)
        {
            var x = ours.Encode(l); var y = hf.Encode(l);
            oursTokens += x.Length; hfTokens += y.Length;
            if (!x.SequenceEqual(y.Select(u => (int)u))) differ++;
        }
        Console.WriteLine($"tokenizer: corpus {lines.Count} lines, {chars} chars, {oursTokens} tokens (HF {hfTokens}); lines encoded differently: {differ}");
        var oursRate = Rates(repeats, () => { foreach (var l in lines) ours.Encode(l); }, oursTokens);
        var hfRate = Rates(repeats, () => { foreach (var l in lines) hf.Encode(l); }, hfTokens);
        Console.WriteLine(Stats.Line("tokenizer_ours_tokens_per_s", oursRate, "tokens/s"));
        Console.WriteLine(Stats.Line("tokenizer_hf_tokens_per_s", hfRate, "tokens/s"));
        Console.WriteLine(string.Format(CultureInfo.InvariantCulture, "RESULT tokenizer_ratio ours/hf={0:F2} (median tokens/s; min-time ratio {1:F2})",
            Stats.Median(oursRate) / Stats.Median(hfRate), oursRate.Max() / hfRate.Max()));
        return 0;
    }

    /// <summary>Non-empty lines of the source and documentation files (sorted paths, so the corpus is the same each run).</summary>
    private static List<string> Corpus(string root)
    {
        var files = new[] { "*.md", "*.cs", "*.py" }.SelectMany(p => Directory.EnumerateFiles(root, p, SearchOption.AllDirectories))
            .Where(f => !f.Contains("/bin/", StringComparison.Ordinal) && !f.Contains("/obj/", StringComparison.Ordinal)
                        && !f[root.Length..].Contains("/.", StringComparison.Ordinal))
            .OrderBy(f => f, StringComparer.Ordinal);
        return files.SelectMany(File.ReadLines).Where(l => l.Trim().Length > 0).ToList();
    }

    private static List<double> Rates(int repeats, Action body, long tokens)
    {
        body();
        var r = new List<double>();
        for (int i = 0; i < Math.Max(5, repeats); i++)
        {
            var sw = Stopwatch.StartNew();
            body();
            r.Add(tokens / sw.Elapsed.TotalSeconds);
        }
        return r;
    }
}
