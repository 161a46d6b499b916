using HiggsCluster.Planning;

namespace HiggsCluster.Training.Engine;

/// <summary>One corpus of a mixed dataset in a run: its usable samples and how many the plan draws from it per epoch.</summary>
public sealed record CorpusCount(string Path, double Weight, int TrainSamples, int ValidationSamples, int DrawsPerEpoch);

/// <summary>Per-corpus counts of a run over data.manifests (empty for one manifest), for report.md and the log.</summary>
public static class CorpusCounts
{
    public static IReadOnlyList<CorpusCount> Of(TrainOptions o, IReadOnlyList<long> train, IReadOnlyList<long> validation, SamplePlan plan)
    {
        if (o.Manifests.Count == 0) return Array.Empty<CorpusCount>();
        // ids of a separate validation manifest are nobody's corpus; hash-split validation ids are their corpus's
        int Count(IEnumerable<long> ids, int c) => ids.Count(id => !DataMix.IsSeparateValidationId(id) && DataMix.CorpusOf(id) == c);
        return o.Manifests.Select((m, c) => new CorpusCount(m.Path, m.Weight, Count(train, c), Count(validation, c), plan.CorpusDraws?[c] ?? 0)).ToArray();
    }

    /// <summary>The first corpus of data.manifests without a usable training sample (its weight could not be drawn), or null.</summary>
    public static int? EmptyCorpus(TrainOptions o, IReadOnlyList<long> train)
    {
        var present = train.Select(DataMix.CorpusOf).ToHashSet();
        for (int c = 0; c < o.Manifests.Count; c++) if (!present.Contains(c)) return c;
        return null;
    }

    /// <summary>One line per corpus: "`path` (weight w, 40 %): T training / V validation samples, D drawn per epoch".</summary>
    public static IEnumerable<string> Lines(IReadOnlyList<CorpusCount> corpora)
    {
        double sum = corpora.Sum(c => c.Weight);
        foreach (var c in corpora)
            yield return FormattableString.Invariant(
                $"`{c.Path}` (weight {c.Weight}, {100 * c.Weight / sum:0.#} %): {c.TrainSamples} training / {c.ValidationSamples} validation samples, {c.DrawsPerEpoch} drawn per epoch");
    }
}
