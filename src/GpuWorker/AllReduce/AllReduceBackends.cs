using System.Net;

namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>
/// What a worker forms its groups with: the TCP ring, or NCCL where this worker can join it. Injected into the worker
/// actor so protocol tests run the NCCL path on CPU with an in-memory stand-in.
/// </summary>
public interface IAllReduceBackends
{
    /// <summary>CUDA and the NCCL library are usable by this worker (reported to the coordinator as HasCuda).</summary>
    bool NcclUsable { get; }

    /// <summary>Rank 0 only: a fresh unique id (encodes this machine's bootstrap address). Host-only work.</summary>
    byte[] CreateNcclId();

    /// <summary>Joins rank <paramref name="rank"/> of <paramref name="world"/> on <paramref name="device"/>; blocks until every rank joined.</summary>
    IGradientAllReduce JoinNccl(byte[] id, int rank, int world, long generation, string device);

    /// <summary>Forms the TCP ring; every connection authenticates with <paramref name="key"/>, the generation's secret from the coordinator.</summary>
    Task<IGradientAllReduce> ConnectRing(RingListener listener, int rank, IReadOnlyList<IPEndPoint> peers, long generation, byte[] key, TimeSpan timeout,
        Action<string>? refused = null);
}
