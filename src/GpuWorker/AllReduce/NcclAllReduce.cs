using System.Runtime.InteropServices;

namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>
/// NCCL backend: one communicator per membership generation, sum of one flat device bucket in place on the
/// default stream (stream 0), so it is ordered after the backward pass and before the optimizer step without syncs.
/// Loaded only where libnccl.so.2 is present (<see cref="IsAvailable"/>).
/// </summary>
public sealed class NcclAllReduce : IGradientAllReduce
{
    private IntPtr _comm;

    public int Rank { get; }
    public int WorldSize { get; }
    public long Generation { get; }
    public bool AcceptsDeviceMemory => true;

    private NcclAllReduce(IntPtr comm, int rank, int world, long generation)
    {
        _comm = comm; Rank = rank; WorldSize = world; Generation = generation;
    }

    /// <summary>True when libnccl.so.2 loads; otherwise <paramref name="reason"/> says why.</summary>
    public static bool IsAvailable(out string reason)
    {
        if (!NativeLibrary.TryLoad(NcclNative.Library, out var handle))
        {
            reason = $"{NcclNative.Library} could not be loaded (no NCCL/CUDA on this machine)";
            return false;
        }
        NativeLibrary.Free(handle);
        reason = "";
        return true;
    }

    public static int Version()
    {
        NcclNative.Check(NcclNative.ncclGetVersion(out int v), "ncclGetVersion");
        return v;
    }

    /// <summary>Rank 0 calls this and the coordinator hands the bytes to every rank (AllReduceGroup.NcclUniqueId).</summary>
    public static unsafe byte[] CreateUniqueId()
    {
        NcclUniqueId id;
        NcclNative.Check(NcclNative.ncclGetUniqueId(&id), "ncclGetUniqueId");
        return id.ToBytes();
    }

    /// <summary>Blocks until all <paramref name="world"/> ranks have joined (call on the rank's CUDA device).</summary>
    public static NcclAllReduce Join(byte[] uniqueId, int rank, int world, long generation)
    {
        NcclNative.Check(NcclNative.ncclCommInitRank(out var comm, world, NcclUniqueId.FromBytes(uniqueId), rank),
            $"ncclCommInitRank(rank {rank} of {world}, generation {generation})");
        return new NcclAllReduce(comm, rank, world, generation);
    }

    public void AllReduceSum(GradientBucket bucket)
    {
        if (!bucket.OnDevice) throw new AllReduceException("the NCCL backend reduces device memory; use the TCP ring for host buffers");
        ObjectDisposedException.ThrowIf(_comm == IntPtr.Zero, this);
        NcclNative.Check(NcclNative.ncclAllReduce(bucket.DevicePointer, bucket.DevicePointer, (nuint)bucket.Count,
            NcclNative.NcclFloat32, NcclNative.NcclSum, _comm, IntPtr.Zero), $"ncclAllReduce(rank {Rank}, {bucket.Count} floats)");
    }

    /// <summary>Membership changed with a collective possibly in flight: abort instead of a destroy that could hang.</summary>
    public void Abort()
    {
        if (_comm == IntPtr.Zero) return;
        NcclNative.ncclCommAbort(_comm);
        _comm = IntPtr.Zero;
    }

    public void Dispose()
    {
        if (_comm == IntPtr.Zero) return;
        NcclNative.ncclCommDestroy(_comm);
        _comm = IntPtr.Zero;
    }
}
