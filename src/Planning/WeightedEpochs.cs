namespace HiggsCluster.Planning;

/// <summary>
/// The epoch order of a mixed dataset. The rule, for epoch e over N training ids (N = every corpus's training ids
/// together, so an epoch has as many steps as an unweighted one):
/// <list type="number">
/// <item>corpus c draws n_c = its share w_c / Σw of N: the floor of w_c / Σw × N, then the samples left over go one
/// each to the corpora with the largest fractional parts (ties to the lower corpus index), so Σ n_c = N;</item>
/// <item>corpus c's draws come from its own stream: pass p of the stream is a seeded permutation of the corpus's ids
/// (seed, c, p), passes follow each other, and epoch e takes stream positions [e × n_c, (e + 1) × n_c). Within a pass
/// there is no repetition; a corpus smaller than its share cycles into the next pass, a larger one is seen a part at a
/// time, the next epoch going on where this one stopped;</item>
/// <item>the epoch's N draws are shuffled together with the same per-epoch permutation an unweighted plan uses.</item>
/// </list>
/// Pure in (ids, weights, seed, epoch): every node computes the same order, and a resumed run finds the same steps.
/// </summary>
public sealed class WeightedEpochs
{
    private readonly long[][] _byCorpus;
    private readonly ulong _seed;

    /// <summary>Draws of each corpus per epoch (n_c above).</summary>
    public IReadOnlyList<int> Draws { get; }

    public WeightedEpochs(IReadOnlyList<long> ids, IReadOnlyList<double> weights, ulong seed)
    {
        if (weights.Count == 0) throw new ArgumentException("a mixed plan needs at least one corpus weight");
        for (int c = 0; c < weights.Count; c++)
            if (!(weights[c] > 0) || !double.IsFinite(weights[c])) throw new ArgumentException($"corpus {c} has weight {weights[c]}; weights must be positive");
        var groups = ids.GroupBy(DataMix.CorpusOf).ToDictionary(g => g.Key, g => g.Order().ToArray());
        foreach (var c in groups.Keys)
            if (c < 0 || c >= weights.Count) throw new ArgumentException($"sample ids of corpus {c} but weights for {weights.Count} corpora");
        _byCorpus = Enumerable.Range(0, weights.Count).Select(c => groups.GetValueOrDefault(c) ?? Array.Empty<long>()).ToArray();
        for (int c = 0; c < weights.Count; c++)
            if (_byCorpus[c].Length == 0) throw new ArgumentException($"corpus {c} has weight {weights[c]} but no training samples");
        _seed = seed;
        Draws = Quotas(weights, ids.Count);
    }

    /// <summary>Largest-remainder rounding of the weight shares of <paramref name="total"/>.</summary>
    public static int[] Quotas(IReadOnlyList<double> weights, int total)
    {
        double sum = weights.Sum();
        var exact = weights.Select(w => w / sum * total).ToArray();
        var n = exact.Select(x => (int)Math.Floor(x)).ToArray();
        int left = total - n.Sum();
        foreach (var c in Enumerable.Range(0, n.Length).OrderByDescending(c => exact[c] - n[c]).ThenBy(c => c).Take(left)) n[c]++;
        return n;
    }

    /// <summary>Epoch <paramref name="epoch"/>'s ids: each corpus's draws, then shuffled together by <paramref name="shuffle"/>.</summary>
    public long[] Epoch(int epoch, Action<long[]> shuffle)
    {
        var order = new List<long>(Draws.Sum());
        for (int c = 0; c < _byCorpus.Length; c++)
        {
            var ids = _byCorpus[c];
            long from = (long)epoch * Draws[c], to = from + Draws[c];
            long[]? pass = null; long passIndex = -1;
            for (long k = from; k < to; k++)
            {
                long p = k / ids.Length;
                if (p != passIndex) { pass = Pass(c, p); passIndex = p; }
                order.Add(pass![k % ids.Length]);
            }
        }
        var result = order.ToArray();
        shuffle(result);
        return result;
    }

    private long[] Pass(int corpus, long pass)
    {
        var o = (long[])_byCorpus[corpus].Clone();
        var rng = new SplitMix64(SplitMix64.Hash(_seed ^ (0xA24BAED4963EE407UL * (ulong)(corpus + 1)), (ulong)pass));
        for (int i = o.Length - 1; i > 0; i--)
        {
            int j = (int)(rng.Next() % (ulong)(i + 1));
            (o[i], o[j]) = (o[j], o[i]);
        }
        return o;
    }
}
