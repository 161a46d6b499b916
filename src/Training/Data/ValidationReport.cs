using System.Text;

namespace HiggsCluster.Training.Data;

/// <summary>One problem found in a manifest entry: which entry, which field, what is wrong.</summary>
public sealed record EntryProblem(long EntryIndex, string Field, string Message)
{
    /// <summary>The manifest of the entry when a report covers several corpora (entry indices restart in each).</summary>
    public string? Corpus { get; init; }

    public override string ToString() => (Corpus is null ? "" : Corpus + ": ") + $"entry {EntryIndex}: {Field}: {Message}";
}

/// <summary>One corpus of a report over several manifests: its weight (when a config gave one) and its counts.</summary>
public sealed class CorpusTally(string path, double? weight)
{
    public string Path { get; } = path;
    public double? Weight { get; } = weight;
    public long Entries { get; internal set; }
    public long ValidEntries { get; internal set; }
    public double AudioSeconds { get; internal set; }
}

/// <summary>
/// The consolidated result of a pre-flight pass over a manifest: counts, audio hours, a token-length histogram
/// and every problem with its entry index and field. Pure data: the validator fills it, the CLI prints it.
/// </summary>
public sealed class ValidationReport
{
    private readonly List<EntryProblem> _errors = new();
    private readonly List<long> _tokenLengths = new();
    private readonly List<CorpusTally> _corpora = new();

    public long Entries { get; private set; }
    public long ValidEntries { get; private set; }
    public long AudioSegments { get; private set; }
    public double AudioSeconds { get; private set; }
    public IReadOnlyList<EntryProblem> Errors => _errors;
    public IReadOnlyList<long> TokenLengths => _tokenLengths;
    public bool Ok => _errors.Count == 0;
    /// <summary>The corpora, in order, when the report covers several manifests (empty for one).</summary>
    public IReadOnlyList<CorpusTally> Corpora => _corpora;

    /// <summary>Entries added from now on belong to this corpus (counted on their own, problems named by its path).</summary>
    public void BeginCorpus(string path, double? weight) => _corpora.Add(new CorpusTally(path, weight));

    public void AddValid(long tokenLength, int audioSegments, double audioSeconds)
    {
        Entries++; ValidEntries++;
        AudioSegments += audioSegments;
        AudioSeconds += audioSeconds;
        _tokenLengths.Add(tokenLength);
        if (_corpora.Count > 0) { var c = _corpora[^1]; c.Entries++; c.ValidEntries++; c.AudioSeconds += audioSeconds; }
    }

    public void AddInvalid(IEnumerable<EntryProblem> problems)
    {
        Entries++;
        if (_corpora.Count == 0) { _errors.AddRange(problems); return; }
        var c = _corpora[^1];
        c.Entries++;
        _errors.AddRange(problems.Select(p => p with { Corpus = c.Path }));
    }

    /// <summary>Power-of-two buckets of the token lengths of valid entries: (lower bound, upper bound exclusive, count).</summary>
    public IReadOnlyList<(long From, long To, long Count)> Histogram()
    {
        if (_tokenLengths.Count == 0) return Array.Empty<(long, long, long)>();
        var buckets = new SortedDictionary<long, long>();
        foreach (var l in _tokenLengths)
        {
            long lo = 1;
            while (lo * 2 <= Math.Max(1, l)) lo *= 2;
            buckets[lo] = buckets.GetValueOrDefault(lo) + 1;
        }
        return buckets.Select(kv => (kv.Key, kv.Key * 2, kv.Value)).ToList();
    }

    public string Render()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"entries: {Entries} ({ValidEntries} valid, {Entries - ValidEntries} with errors)");
        sb.AppendLine($"audio: {AudioSegments} segments, {AudioSeconds / 3600.0:F3} h");
        if (_corpora.Count > 0)
        {
            sb.AppendLine($"corpora: {_corpora.Count}");
            double weights = _corpora.Sum(c => c.Weight ?? 0);
            foreach (var c in _corpora)
                sb.AppendLine(FormattableString.Invariant($"  {c.Path}: {c.Entries} entries ({c.ValidEntries} valid, {c.Entries - c.ValidEntries} with errors), {c.AudioSeconds / 3600.0:F3} h")
                    + (c.Weight is { } w && weights > 0 ? FormattableString.Invariant($", weight {w} ({100 * w / weights:0.#} % of the draws)") : ""));
        }
        if (_tokenLengths.Count > 0)
        {
            var sorted = _tokenLengths.OrderBy(x => x).ToList();
            sb.AppendLine($"tokens per sample: min {sorted[0]}, median {sorted[sorted.Count / 2]}, max {sorted[^1]}");
            long peak = Histogram().Max(h => h.Count);
            foreach (var (from, to, count) in Histogram())
                sb.AppendLine($"  [{from,6}, {to,6}) {count,8} {new string('#', (int)Math.Ceiling(40.0 * count / peak))}");
        }
        if (_errors.Count > 0)
        {
            sb.AppendLine($"errors: {_errors.Count}");
            foreach (var e in _errors) sb.AppendLine("  " + e);
        }
        else sb.AppendLine("errors: none");
        return sb.ToString();
    }
}
