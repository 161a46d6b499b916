namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>
/// How the ring cuts a bucket and in which order it adds. The bucket is cut into <c>world</c> contiguous chunks
/// (the first <c>count % world</c> one element longer). Chunk c is summed starting from rank c's value and adding
/// ranks c+1, c+2, … (mod world) left to right; that order is fixed, so every run and every rank gets the same bits.
/// </summary>
public static class RingLayout
{
    public static (int Start, int Length) Chunk(int count, int world, int chunk)
    {
        if (world <= 0) throw new ArgumentOutOfRangeException(nameof(world));
        int baseLen = count / world, rem = count % world;
        int start = chunk * baseLen + Math.Min(chunk, rem);
        return (start, baseLen + (chunk < rem ? 1 : 0));
    }

    public static int Mod(int a, int n) => ((a % n) + n) % n;

    /// <summary>Rank order in which the values of chunk <paramref name="chunk"/> are added.</summary>
    public static IEnumerable<int> SummationOrder(int world, int chunk)
    {
        for (int k = 0; k < world; k++) yield return Mod(chunk + k, world);
    }
}
