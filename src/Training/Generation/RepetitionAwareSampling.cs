using HiggsCluster.Planning;

namespace HiggsCluster.Training.Generation;

/// <summary>
/// Repetition-aware sampling as upstream's _sample_audio_tokens (modeling_higgs_audio.py) applies it to each audio column.
/// </summary>
public static class RepetitionAwareSampling
{
    /// <summary>
    /// For every codebook row whose chosen code already occurs at least <paramref name="maxRepeat"/> times among that
    /// row's last <paramref name="window"/> columns of <paramref name="history"/>, replaces it by a draw from the softmax
    /// of the raw logits: no temperature, no top-k, no top-p, even when the first choice was greedy. The resample may
    /// return the same code; it happens once. Every row is checked, including rows the delay pattern overwrites
    /// afterwards, because upstream resamples before its delay handling. History is upstream's audio_out_ids: the
    /// prompt's audio-out columns, then every generated column (BOS and EOS columns included).
    /// Returns the rows it resampled.
    /// </summary>
    public static List<int> Apply(long[] column, ReadOnlySpan<float> rawLogits, int vocab, IReadOnlyList<long[]> history,
        int window, int maxRepeat, ref SplitMix64 rng)
    {
        var resampled = new List<int>();
        if (window <= 0) return resampled;
        int from = Math.Max(0, history.Count - window);
        for (int k = 0; k < column.Length; k++)
        {
            int seen = 0;
            for (int c = from; c < history.Count; c++) if (history[c][k] == column[k]) seen++;
            if (seen >= maxRepeat) resampled.Add(k);
        }
        // Upstream draws all flagged rows in one multinomial call, row order; ours draws them one by one in that order.
        foreach (int k in resampled)
            column[k] = LogitWarpers.Multinomial(LogitWarpers.Softmax(rawLogits.Slice(k * vocab, vocab)), ref rng);
        return resampled;
    }
}
