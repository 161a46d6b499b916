namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>A flat gradient bucket: either host floats or a CUDA device pointer to <see cref="Count"/> floats.</summary>
public readonly struct GradientBucket
{
    public Memory<float> HostData { get; }
    public IntPtr DevicePointer { get; }
    public long Count { get; }
    public bool OnDevice => DevicePointer != IntPtr.Zero;

    private GradientBucket(Memory<float> host, IntPtr device, long count) { HostData = host; DevicePointer = device; Count = count; }

    public static GradientBucket Host(Memory<float> data) => new(data, IntPtr.Zero, data.Length);
    public static GradientBucket Device(IntPtr pointer, long count) =>
        pointer == IntPtr.Zero ? throw new ArgumentException("null device pointer", nameof(pointer)) : new(default, pointer, count);
}

/// <summary>
/// In-place sum of one flat bucket over every rank of a group. Every rank ends with bit-identical values
/// (the summation order is fixed by the backend, never by timing). Callers divide for the mean themselves.
/// A group is one membership generation: when membership changes, abort it and form a new one.
/// </summary>
public interface IGradientAllReduce : IDisposable
{
    int Rank { get; }
    int WorldSize { get; }
    long Generation { get; }
    bool AcceptsDeviceMemory { get; }
    void AllReduceSum(GradientBucket bucket);

    /// <summary>
    /// Membership changed, a collective may be in flight or waiting on a dead peer: break the group off without the
    /// orderly shutdown <see cref="IDisposable.Dispose"/> may do (which could wait on that peer).
    /// </summary>
    void Abort();
}

public sealed class AllReduceException(string message, Exception? inner = null) : Exception(message, inner);
