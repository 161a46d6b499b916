namespace HiggsCluster.Messages;

/// <summary>
/// Worker → coordinator on start (and again every few seconds): where its ring all-reduce listener is, whether it can
/// join an NCCL group (<see cref="HasCuda"/>: CUDA and libnccl present and a GPU of its own), and how many committed
/// steps of run <see cref="RunId"/> it has applied (a fresh worker: none).
/// </summary>
public sealed record RegisterWorker(string WorkerId, string RingHost, int RingPort, bool HasCuda, string? RunId = null, long AppliedSteps = 0) : IControlMessage;

/// <summary>
/// Coordinator → a worker holding the committed state of <see cref="Step"/> steps: send it (adapter, optimizer, engine
/// counters) as chunked <see cref="TensorSnapshot"/>s to the workers at <see cref="TargetPaths"/>, who joined later.
/// </summary>
public sealed record HandOverTo(string RunId, long Generation, long Step, string[] TargetPaths) : IControlMessage;

/// <summary>
/// Coordinator → worker: the run rolled back (no live worker held its committed state): load the checkpoint of
/// <see cref="Step"/> steps at <see cref="Path"/> (null: the run's initial adapter), answer with <see cref="StateInstalled"/>.
/// With <see cref="CutMetricsLog"/> the worker also drops the metrics of the undone steps from the run's log.
/// </summary>
public sealed record RestoreCheckpoint(string RunId, long Generation, long Step, string? Path, bool CutMetricsLog) : IControlMessage;

/// <summary>Worker → coordinator: it installed the state of <see cref="Step"/> committed steps received from a peer (or a checkpoint).</summary>
public sealed record StateInstalled(string RunId, string WorkerId, long Step) : IControlMessage;

/// <summary>Worker → coordinator: asked to send the state of <see cref="Step"/> steps, it could not.</summary>
public sealed record HandOverNotSent(string RunId, string WorkerId, long Step, string Reason) : IControlMessage;

public sealed record GroupMember(int Rank, string WorkerId, string Host, int Port);

/// <summary>How a group sums its gradients: the TCP ring over host copies, or NCCL on device memory.</summary>
public enum AllReduceBackend { TcpRing, Nccl }

/// <summary>
/// Coordinator → every worker of a generation: the ordered ring, the backend chosen for the run and, for NCCL, the
/// unique id made on rank 0. An NCCL group is sent twice: first without an id (rank 0 then creates one and reports it
/// in <see cref="NcclIdCreated"/>), then with it (every rank joins). A new generation is formed whenever membership
/// changes. <see cref="Device"/> is the run's device (model.device), on which an NCCL rank joins.
/// </summary>
public sealed record AllReduceGroup(string RunId, long Generation, GroupMember[] Peers, byte[]? NcclUniqueId) : IControlMessage
{
    public AllReduceBackend Backend { get; init; } = AllReduceBackend.TcpRing;
    public string Device { get; init; } = "cpu";
    /// <summary>
    /// The generation's secret (TCP ring): every ring connection proves it holds this key, so only the workers the
    /// coordinator told (over TLS remoting) can take a place in the ring. Empty: the ring refuses to form.
    /// </summary>
    public byte[] RingKey { get; init; } = Array.Empty<byte>();
}

/// <summary>Rank 0 of an NCCL group → coordinator: the unique id it created for generation <see cref="Generation"/>.</summary>
public sealed record NcclIdCreated(string RunId, long Generation, byte[] Id) : IControlMessage;

/// <summary>Coordinator → workers: run global step <see cref="Step"/> (batches come from the loaders by pull).</summary>
public sealed record StartStep(string RunId, long Generation, int Epoch, long Step, int MicroBatches) : IControlMessage;

/// <summary>
/// Worker → coordinator: the rank's gradients of the step are all-reduced. <see cref="Stats"/> are the rank's own
/// step statistics (see <see cref="StepStats"/>) and <see cref="LoraChecksum"/> fingerprints the parameters the step
/// started from (equal on every rank, else the ranks diverged).
/// </summary>
public sealed record StepDone(string RunId, long Generation, long Step, int Rank, double[] Stats, ulong LoraChecksum) : IControlMessage;

/// <summary>
/// Coordinator → workers: every rank reduced the step; <see cref="Totals"/> is the ranks' statistics summed in rank
/// order (the same on every worker), from which each normalises its gradients and steps the optimizer.
/// </summary>
public sealed record StepCommitted(string RunId, long Step, double[] Totals) : IControlMessage;

/// <summary>
/// Worker → coordinator: the communicator of <see cref="Generation"/> broke (a peer stopped answering mid all-reduce, or
/// the ring could not form). Nothing the worker holds is lost; the coordinator forms the group again under a new
/// generation, so every member drops the step and the ring, and the step runs again.
/// </summary>
public sealed record GroupBroken(string RunId, string WorkerId, long Generation, string Reason) : IControlMessage;

/// <summary>Worker → coordinator: the run cannot go on on this worker (diverged, a batch could not be built, …).</summary>
public sealed record WorkerFailed(string RunId, string WorkerId, long Step, string Reason) : IControlMessage;

/// <summary>
/// A step's statistics as numbers, summed element-wise across ranks: [0] loss weight, [1] weighted loss, the rest the
/// training engine's detail (text and per-codebook sums and counts, positions, micro-batches, non-finite flag).
/// </summary>
public static class StepStats
{
    public static double Loss(double[] s) => s.Length >= 2 && s[0] > 0 ? s[1] / s[0] : double.NaN;

    /// <summary>Sums in the given order (rank order), so every caller gets identical bits.</summary>
    public static double[] Sum(IEnumerable<double[]> inRankOrder)
    {
        double[]? total = null;
        foreach (var v in inRankOrder)
        {
            if (total is null) { total = (double[])v.Clone(); continue; }
            if (v.Length != total.Length) throw new ArgumentException($"step statistics of different lengths ({v.Length} vs {total.Length})");
            for (int i = 0; i < v.Length; i++) total[i] += v[i];
        }
        return total ?? Array.Empty<double>();
    }
}

public sealed record GetNodeStatus : IControlMessage
{
    public static readonly GetNodeStatus Instance = new();
}

public sealed record NodeStatus(string Address, string[] Roles, int MembersUp, string[] UpAddresses) : IControlMessage;
