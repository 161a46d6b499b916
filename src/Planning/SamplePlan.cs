namespace HiggsCluster.Planning;

/// <summary>
/// The deterministic global sample plan: which training sample ids form global (optimizer) step s, and how they are cut
/// into per-rank micro-batches. <see cref="Ranks"/> are plan ranks: the global batch is micro × accumulation × ranks
/// whatever number of workers runs it; a worker takes one or more plan ranks (<see cref="WorkerMicroBatches"/>), so
/// losing or adding a worker changes who computes a micro-batch, never which samples form a step. Epoch e visits every id once in a seeded permutation (Fisher–Yates on SplitMix64, so the
/// order is the same on every machine and .NET version; a mixed dataset draws by corpus weight instead, see <see cref="WeightedEpochs"/>); a step takes the next <see cref="GlobalBatch"/> ids, the last
/// step of an epoch may be short. Pure: no I/O, no torch, no actors; a cluster coordinator and a single-process trainer
/// agree on the plan by sharing the ids, seed and sizes (this is the one plan both use).
/// </summary>
public sealed class SamplePlan
{
    private readonly long[] _ids;
    private readonly Dictionary<int, long[]> _epochOrder = new();
    private readonly WeightedEpochs? _mix;

    public ulong Seed { get; }
    public int MicroBatchSize { get; }
    public int GradAccumulation { get; }
    public int Ranks { get; }
    public int GlobalBatch => MicroBatchSize * GradAccumulation * Ranks;
    public int StepsPerEpoch { get; }
    /// <summary>Optimizer steps of the whole run: max_steps when given, else epochs × steps per epoch.</summary>
    public long TotalSteps { get; }
    public IReadOnlyList<long> Ids => _ids;
    /// <summary>Draws per epoch of each corpus of a mixed dataset (see <see cref="WeightedEpochs"/>); null for one manifest.</summary>
    public IReadOnlyList<int>? CorpusDraws => _mix?.Draws;

    /// <param name="corpusWeights">the weights of <c>data.manifests</c> (ids name their corpus: <see cref="DataMix"/>);
    /// null for one manifest, whose plan stays the plain per-epoch permutation.</param>
    public SamplePlan(IEnumerable<long> sampleIds, ulong seed, int microBatchSize, int gradAccumulation, int ranks, double epochs, long? maxSteps = null,
                      IReadOnlyList<double>? corpusWeights = null)
    {
        _ids = sampleIds.ToArray();
        if (_ids.Length == 0) throw new ArgumentException("the sample plan has no training samples");
        if (corpusWeights is not null) _mix = new WeightedEpochs(_ids, corpusWeights, seed);
        if (microBatchSize <= 0 || gradAccumulation <= 0 || ranks <= 0)
            throw new ArgumentException("micro batch size, gradient accumulation and plan ranks must be positive");
        Seed = seed; MicroBatchSize = microBatchSize; GradAccumulation = gradAccumulation; Ranks = ranks;
        StepsPerEpoch = (_ids.Length + GlobalBatch - 1) / GlobalBatch;
        TotalSteps = maxSteps is { } m && m > 0 ? m : (long)Math.Ceiling(epochs * StepsPerEpoch);
        if (TotalSteps <= 0) throw new ArgumentException("the run has no optimizer steps (epochs and max_steps are both 0)");
    }

    public int EpochOf(long step) => (int)(step / StepsPerEpoch);

    /// <summary>The sample ids of global step <paramref name="step"/>, in plan order.</summary>
    public long[] StepSamples(long step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step));
        var order = EpochOrder(EpochOf(step));
        int start = (int)(step % StepsPerEpoch) * GlobalBatch;
        return order.AsSpan(start, Math.Min(GlobalBatch, order.Length - start)).ToArray();
    }

    /// <summary>
    /// The micro-batches of rank <paramref name="rank"/> for step s: rank r owns the r-th contiguous block of the step's
    /// ids, cut into <see cref="GradAccumulation"/> micro-batches. Empty micro-batches (a short last step) are left out.
    /// </summary>
    public IReadOnlyList<long[]> MicroBatches(long step, int rank = 0)
    {
        if (rank < 0 || rank >= Ranks) throw new ArgumentOutOfRangeException(nameof(rank));
        var ids = StepSamples(step);
        int perRank = MicroBatchSize * GradAccumulation;
        var result = new List<long[]>();
        for (int m = 0; m < GradAccumulation; m++)
        {
            int from = rank * perRank + m * MicroBatchSize;
            int to = Math.Min(ids.Length, from + MicroBatchSize);
            if (from < to) result.Add(ids[from..to]);
        }
        return result;
    }

    /// <summary>
    /// The plan ranks worker <paramref name="worker"/> of <paramref name="workers"/> computes: r ≡ worker (mod workers).
    /// Fewer workers than ranks means extra accumulation on some workers; more means idle workers (they still join the sum).
    /// </summary>
    public IReadOnlyList<int> RanksOfWorker(int worker, int workers)
    {
        if (workers <= 0 || worker < 0 || worker >= workers) throw new ArgumentOutOfRangeException(nameof(worker), $"worker {worker} of {workers}");
        var r = new List<int>();
        for (int rank = worker; rank < Ranks; rank += workers) r.Add(rank);
        return r;
    }

    /// <summary>The micro-batches worker <paramref name="worker"/> of <paramref name="workers"/> runs for step s, its ranks in order.</summary>
    public IReadOnlyList<long[]> WorkerMicroBatches(long step, int worker, int workers) =>
        RanksOfWorker(worker, workers).SelectMany(r => MicroBatches(step, r)).ToList();

    private long[] EpochOrder(int epoch)
    {
        if (_epochOrder.TryGetValue(epoch, out var o)) return o;
        if (_epochOrder.Count > 4) _epochOrder.Clear();
        if (_mix is not null) return _epochOrder[epoch] = _mix.Epoch(epoch, a => Shuffle(a, epoch));
        o = (long[])_ids.Clone();
        Shuffle(o, epoch);
        return _epochOrder[epoch] = o;
    }

    private void Shuffle(long[] o, int epoch)
    {
        var rng = new SplitMix64(Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1)));
        for (int i = o.Length - 1; i > 0; i--)
        {
            int j = (int)(rng.Next() % (ulong)(i + 1));
            (o[i], o[j]) = (o[j], o[i]);
        }
    }
}

/// <summary>SplitMix64: a tiny, fully specified generator (same numbers everywhere).</summary>
public struct SplitMix64(ulong state)
{
    private ulong _state = state;

    public ulong Next()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    public static ulong Hash(ulong seed, ulong value) => new SplitMix64(seed ^ (value * 0xD6E8FEB86659FD93UL)).Next();
}

/// <summary>Train/validation split of manifest entries by a seeded hash of the entry index (stable when entries are appended).</summary>
public static class DataSplit
{
    /// <summary>Ids of entries from a separate validation manifest start here (entry index + base; see <see cref="DataMix"/>).</summary>
    public const long ValidationIdBase = 1_000_000_000;

    public static bool IsValidation(long entryIndex, ulong seed, double validationFraction)
    {
        if (validationFraction <= 0) return false;
        double u = (SplitMix64.Hash(seed, (ulong)entryIndex) >> 11) * (1.0 / (1UL << 53));
        return u < validationFraction;
    }

    /// <summary>Splits; guarantees at least one training id and, when a fraction is asked for and ≥ 2 ids exist, one validation id.</summary>
    public static (List<long> Train, List<long> Validation) Split(IReadOnlyList<long> ids, ulong seed, double validationFraction)
    {
        var train = new List<long>(); var val = new List<long>();
        foreach (var id in ids) (IsValidation(id, seed, validationFraction) ? val : train).Add(id);
        if (validationFraction > 0 && val.Count == 0 && train.Count >= 2) { val.Add(train[^1]); train.RemoveAt(train.Count - 1); }
        if (train.Count == 0 && val.Count > 0) { train.Add(val[^1]); val.RemoveAt(val.Count - 1); }
        return (train, val);
    }
}
