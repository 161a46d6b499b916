using HiggsCluster.Planning;

namespace HiggsCluster.Training.Generation;

/// <summary>
/// The per-row token choice of upstream's _sample_text_tokens / _sample_audio_tokens (modeling_higgs_audio.py): HF's
/// logits processors (temperature, then top-k, then top-p, the order transformers 4.45/4.46 build them in
/// _get_logits_processor when do_sample is set), then torch.multinomial over the softmax, or torch.argmax when greedy.
/// Arithmetic is in double where upstream uses float32, so a top-p cut that falls within float rounding may differ.
/// </summary>
public static class LogitWarpers
{
    /// <summary>The processed scores of one row; filtered entries are -∞. Greedy rows get no warpers (do_sample off).</summary>
    public static double[] Scores(ReadOnlySpan<float> logits, SamplingOptions options)
    {
        var s = new double[logits.Length];
        for (int i = 0; i < s.Length; i++) s[i] = logits[i];
        if (options.SamplesGreedily) return s;
        // HF adds TemperatureLogitsWarper only when temperature != 1.0; dividing by 1 would change nothing anyway.
        if (options.Temperature != 1.0)
            for (int i = 0; i < s.Length; i++) s[i] /= options.Temperature;
        if (options.TopK > 0) TopK(s, options.TopK);
        if (options.TopP < 1.0) TopP(s, options.TopP);
        return s;
    }

    /// <summary>HF TopKLogitsWarper: everything strictly below the k-th largest score goes (ties with it stay).</summary>
    public static void TopK(double[] scores, int k)
    {
        k = Math.Min(Math.Max(k, 1), scores.Length);
        if (k == scores.Length) return;
        var sorted = (double[])scores.Clone();
        Array.Sort(sorted);
        double kth = sorted[sorted.Length - k];
        for (int i = 0; i < scores.Length; i++) if (scores[i] < kth) scores[i] = double.NegativeInfinity;
    }

    /// <summary>
    /// HF TopPLogitsWarper: sort ascending, accumulate softmax mass from the least likely up, drop entries whose running
    /// mass is ≤ 1 - p, always keep the most likely one. Ties are ordered by index (torch.sort leaves that unspecified).
    /// </summary>
    public static void TopP(double[] scores, double p)
    {
        var probs = Softmax(scores);
        var order = Enumerable.Range(0, scores.Length).OrderBy(i => scores[i]).ThenBy(i => i).ToArray();
        double cumulative = 0;
        for (int r = 0; r < order.Length - 1; r++)
        {
            cumulative += probs[order[r]];
            if (cumulative <= 1 - p) scores[order[r]] = double.NegativeInfinity;
        }
    }

    /// <summary>softmax over a row; -∞ entries get probability 0.</summary>
    public static double[] Softmax(ReadOnlySpan<double> scores)
    {
        double max = double.NegativeInfinity;
        foreach (var v in scores) if (v > max) max = v;
        var p = new double[scores.Length];
        if (double.IsNegativeInfinity(max)) throw new InvalidOperationException("sampling: every score of the row is -inf");
        double sum = 0;
        for (int i = 0; i < p.Length; i++) sum += p[i] = Math.Exp(scores[i] - max);
        for (int i = 0; i < p.Length; i++) p[i] /= sum;
        return p;
    }

    public static double[] Softmax(ReadOnlySpan<float> logits)
    {
        var s = new double[logits.Length];
        for (int i = 0; i < s.Length; i++) s[i] = logits[i];
        return Softmax(s);
    }

    /// <summary>torch.argmax: the first index of the largest value.</summary>
    public static int Argmax(ReadOnlySpan<double> scores)
    {
        int best = 0;
        for (int i = 1; i < scores.Length; i++) if (scores[i] > scores[best]) best = i;
        return best;
    }

    /// <summary>One draw from a probability row by inverse CDF on a 53-bit uniform of our SplitMix64 stream.</summary>
    public static int Multinomial(double[] probs, ref SplitMix64 rng)
    {
        double u = (rng.Next() >> 11) * (1.0 / (1UL << 53));
        double total = 0;
        foreach (var q in probs) total += q;
        double target = u * total, cumulative = 0;
        int last = -1;
        for (int i = 0; i < probs.Length; i++)
        {
            if (probs[i] <= 0) continue;
            cumulative += probs[i];
            last = i;
            if (target < cumulative) return i;
        }
        return last; // rounding left target at the very top: the last token with mass
    }

    /// <summary>The token one row yields: argmax of the raw row when greedy, else a draw from the warped distribution.</summary>
    public static int Choose(ReadOnlySpan<float> logits, SamplingOptions options, ref SplitMix64 rng)
    {
        var scores = Scores(logits, options);
        return options.SamplesGreedily ? Argmax(scores) : Multinomial(Softmax(scores), ref rng);
    }
}
