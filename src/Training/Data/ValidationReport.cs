using System.Text;

namespace HiggsCluster.Training.Data;

/// <summary>One problem found in a manifest entry: which entry, which field, what is wrong.</summary>
public sealed record EntryProblem(long EntryIndex, string Field, string Message)
{
    public override string ToString() => $"entry {EntryIndex}: {Field}: {Message}";
}

/// <summary>
/// The consolidated result of a pre-flight pass over a manifest: counts, audio hours, a token-length histogram
/// and every problem with its entry index and field. Pure data: the validator fills it, the CLI prints it.
/// </summary>
public sealed class ValidationReport
{
    private readonly List<EntryProblem> _errors = new();
    private readonly List<long> _tokenLengths = new();

    public long Entries { get; private set; }
    public long ValidEntries { get; private set; }
    public long AudioSegments { get; private set; }
    public double AudioSeconds { get; private set; }
    public IReadOnlyList<EntryProblem> Errors => _errors;
    public IReadOnlyList<long> TokenLengths => _tokenLengths;
    public bool Ok => _errors.Count == 0;

    public void AddValid(long tokenLength, int audioSegments, double audioSeconds)
    {
        Entries++; ValidEntries++;
        AudioSegments += audioSegments;
        AudioSeconds += audioSeconds;
        _tokenLengths.Add(tokenLength);
    }

    public void AddInvalid(IEnumerable<EntryProblem> problems)
    {
        Entries++;
        _errors.AddRange(problems);
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
