namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>
/// Cheap order-sensitive 64-bit fingerprint of parameter bits. Ranks that stepped identically report equal values;
/// any differing bit (divergence) changes it with overwhelming probability.
/// </summary>
public static class LoraChecksum
{
    public static ulong Of(ReadOnlySpan<float> values, ulong seed = 0xcbf29ce484222325UL)
    {
        ulong h = seed;
        foreach (var bits in System.Runtime.InteropServices.MemoryMarshal.Cast<float, uint>(values))
        {
            h ^= bits;
            h *= 0x100000001b3UL;
            h ^= h >> 29;
        }
        return h;
    }
}
