namespace HiggsCluster.Coordinator.Planning;

/// <summary>
/// The deterministic global plan: epoch e visits every sample id once in a seeded permutation; global step s of the
/// epoch is the next <see cref="SamplesPerStep"/> ids of it (the last step takes the remainder). Which ids form a step
/// never depends on the number of workers; only their split over ranks does.
/// </summary>
public sealed record SamplePlan(long SampleCount, int SamplesPerStep, int MicroBatchSize, ulong Seed)
{
    public long StepsPerEpoch => SampleCount == 0 ? 0 : (SampleCount + SamplesPerStep - 1) / SamplesPerStep;

    public static SamplePlan Create(long sampleCount, int samplesPerStep, int microBatchSize, ulong seed)
    {
        if (sampleCount <= 0) throw new ArgumentException($"sample count must be positive, got {sampleCount}");
        if (samplesPerStep <= 0) throw new ArgumentException($"samples per step must be positive, got {samplesPerStep}");
        if (microBatchSize <= 0) throw new ArgumentException($"micro-batch size must be positive, got {microBatchSize}");
        return new SamplePlan(sampleCount, samplesPerStep, microBatchSize, seed);
    }

    /// <summary>Seeded Fisher–Yates over 0..SampleCount-1 with SplitMix64 (our own generator: stable across runtimes).</summary>
    public long[] EpochOrder(int epoch)
    {
        var order = new long[SampleCount];
        for (long i = 0; i < order.LongLength; i++) order[i] = i;
        ulong state = Seed ^ (0x9E3779B97F4A7C15UL * (ulong)(epoch + 1));
        for (long i = order.LongLength - 1; i > 0; i--)
        {
            long j = (long)(Next(ref state) % (ulong)(i + 1));
            (order[i], order[j]) = (order[j], order[i]);
        }
        return order;
    }

    public long[] StepSamples(long[] epochOrder, long step)
    {
        if (step < 0 || step >= StepsPerEpoch) throw new ArgumentOutOfRangeException(nameof(step), $"step {step} outside 0..{StepsPerEpoch - 1}");
        long start = step * SamplesPerStep;
        long end = Math.Min(SampleCount, start + SamplesPerStep);
        return epochOrder[(int)start..(int)end];
    }

    /// <summary>Rank r gets a contiguous, near-equal slice of the step, cut into micro-batches (last one shorter).</summary>
    public long[][][] SplitAcrossRanks(long[] stepSamples, int world)
    {
        if (world <= 0) throw new ArgumentOutOfRangeException(nameof(world), "a step needs at least one worker rank");
        var ranks = new long[world][][];
        int n = stepSamples.Length, baseLen = n / world, rem = n % world, start = 0;
        for (int r = 0; r < world; r++)
        {
            int len = baseLen + (r < rem ? 1 : 0);
            var slice = stepSamples.AsSpan(start, len);
            int micros = (len + MicroBatchSize - 1) / MicroBatchSize;
            ranks[r] = new long[micros][];
            for (int m = 0; m < micros; m++)
                ranks[r][m] = slice.Slice(m * MicroBatchSize, Math.Min(MicroBatchSize, len - m * MicroBatchSize)).ToArray();
            start += len;
        }
        return ranks;
    }

    private static ulong Next(ref ulong s)
    {
        ulong z = s += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
