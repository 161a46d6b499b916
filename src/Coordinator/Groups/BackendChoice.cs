using HiggsCluster.Messages;

namespace HiggsCluster.Coordinator.Groups;

/// <summary>
/// Which all-reduce a run's group uses. NCCL needs the run on a CUDA device and every rank able to join (CUDA, libnccl
/// and a GPU of its own, as the worker reported); anything else sums host copies over the TCP ring, which is correct
/// everywhere, only slower on GPUs.
/// </summary>
public static class BackendChoice
{
    public sealed record Choice(AllReduceBackend Backend, string Reason);

    public static bool IsCudaDevice(string? device) =>
        device is "cuda" || (device is not null && device.StartsWith("cuda:", StringComparison.Ordinal));

    /// <param name="device">the run's model.device (absent: cpu)</param>
    /// <param name="peersHaveCuda">each rank's <see cref="RegisterWorker.HasCuda"/>, in rank order</param>
    public static Choice Choose(string? device, IReadOnlyList<bool> peersHaveCuda)
    {
        if (!IsCudaDevice(device)) return new(AllReduceBackend.TcpRing, $"the run trains on {device ?? "cpu"}");
        if (peersHaveCuda.Count == 0) return new(AllReduceBackend.TcpRing, "the group has no workers");
        var without = Enumerable.Range(0, peersHaveCuda.Count).Where(r => !peersHaveCuda[r]).ToList();
        if (without.Count > 0)
            return new(AllReduceBackend.TcpRing,
                $"rank(s) {string.Join(", ", without)} of {peersHaveCuda.Count} cannot join NCCL (no CUDA, no libnccl or a shared GPU): host copies over the TCP ring");
        return new(AllReduceBackend.Nccl, $"all {peersHaveCuda.Count} rank(s) on CUDA with NCCL");
    }
}
