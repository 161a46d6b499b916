using System.Net;
using HiggsCluster.Training.Cuda;
using TorchSharp;

namespace HiggsCluster.GpuWorker.AllReduce;

/// <summary>
/// The production backends: <see cref="TcpRingAllReduce"/> and <see cref="NcclAllReduce"/>. NCCL counts as usable when
/// torch sees CUDA and libnccl.so.2 loads; <paramref name="allowNccl"/> = false turns it off for workers that share a
/// GPU (several workers in one process), since NCCL refuses two ranks on one device. <paramref name="environment"/>
/// reads environment variables (the process's own unless a test gives another).
/// </summary>
public sealed class RealAllReduceBackends(bool allowNccl = true, Func<string, string?>? environment = null) : IAllReduceBackends
{
    private readonly Lazy<(bool Usable, string Reason)> _probe = new(() => Probe(allowNccl, environment ?? Environment.GetEnvironmentVariable));

    public bool NcclUsable => _probe.Value.Usable;
    public string NcclReason => _probe.Value.Reason;

    /// <summary>
    /// NCCL does not authenticate its peers: its rendezvous accepts whoever presents the 64-bit random "magic" of the
    /// unique id, which the coordinator hands to the group's ranks only over TLS remoting, fresh for every generation.
    /// NCCL_COMM_ID replaces that with a fixed address and a public constant magic, so any host that reaches the port
    /// could join a group; a worker with it set uses the authenticated TCP ring instead.
    /// </summary>
    public static string? UnsafeNcclEnvironment(Func<string, string?> environment) =>
        string.IsNullOrEmpty(environment("NCCL_COMM_ID")) ? null
            : "NCCL_COMM_ID is set, which makes NCCL's rendezvous joinable by any host that reaches it (a fixed address and NCCL's public " +
              "default magic instead of the random id the coordinator hands out over TLS); unset it to use NCCL";

    private static (bool, string) Probe(bool allow, Func<string, string?> environment)
    {
        if (!allow) return (false, "NCCL turned off for this worker (it shares its GPU with other workers of the process)");
        if (UnsafeNcclEnvironment(environment) is { } unsafeSetting) return (false, unsafeSetting);
        // libnccl first: on CPU machines the probe then never loads libtorch just to ask
        if (!NcclAllReduce.IsAvailable(out var reason)) return (false, reason);
        try
        {
            return torch.cuda.is_available() ? (true, "") : (false, "torch sees no CUDA device (CPU build or no GPU)");
        }
        catch (Exception e) when (e is DllNotFoundException or TypeInitializationException or NotSupportedException)
        {
            return (false, $"torch's native library could not be asked about CUDA: {e.Message}");
        }
    }

    public byte[] CreateNcclId() => NcclAllReduce.CreateUniqueId();

    public IGradientAllReduce JoinNccl(byte[] id, int rank, int world, long generation, string device)
    {
        // ncclCommInitRank binds the communicator to the calling thread's current CUDA device, which is 0 unless set
        int index = device.StartsWith("cuda:", StringComparison.Ordinal) ? int.Parse(device["cuda:".Length..]) : 0;
        if (index != 0)
        {
            try { CudaRuntime.SetDevice(index); }
            catch (InvalidOperationException e) { throw new AllReduceException($"cannot select cuda:{index} for NCCL: {e.Message}", e); }
        }
        return new SyncedNccl(NcclAllReduce.Join(id, rank, world, generation), device);
    }

    public async Task<IGradientAllReduce> ConnectRing(RingListener listener, int rank, IReadOnlyList<IPEndPoint> peers, long generation, byte[] key, TimeSpan timeout,
        Action<string>? refused = null) =>
        await TcpRingAllReduce.ConnectAsync(listener, rank, peers, generation, key, timeout, refused: refused);

    /// <summary>
    /// ncclAllReduce only enqueues on the default stream; waiting here, off the actor thread, means a collective stuck
    /// on a dead peer blocks this task, not the actor, which can still abort the communicator.
    /// </summary>
    private sealed class SyncedNccl(NcclAllReduce inner, string device) : IGradientAllReduce
    {
        public int Rank => inner.Rank;
        public int WorldSize => inner.WorldSize;
        public long Generation => inner.Generation;
        public bool AcceptsDeviceMemory => true;

        public void AllReduceSum(GradientBucket bucket)
        {
            inner.AllReduceSum(bucket);
            torch.cuda.synchronize(new torch.Device(device));
        }

        public void Abort() => inner.Abort();
        public void Dispose() => inner.Dispose();
    }
}
