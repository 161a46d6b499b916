using HiggsCluster.Messages;

namespace HiggsCluster.GpuWorker.Actors;

/// <summary>
/// The training engine as the worker actor drives it: one model + LoRA loaded once per run; micro-steps accumulate
/// gradients; the flat bucket is all-reduced; the optimizer steps identically on every rank with the committed totals.
/// </summary>
public interface IStepRunner
{
    /// <summary>Loads (once per run) what the run trains; idempotent for the same run.</summary>
    void BeginRun(RunPlanned run);

    /// <summary>
    /// Forward + backward of one micro-batch of worker <c>batch.Rank</c> in a group of <paramref name="world"/>; returns
    /// its loss. Gradients and the step's statistics accumulate.
    /// </summary>
    double MicroStep(BatchDelivery batch, int world);

    /// <summary>
    /// The flat gradient bucket the all-reduce sums in place, valid until <see cref="OptimizerStep"/> or
    /// <see cref="DiscardGradients"/>. With <paramref name="deviceMemory"/> (the backend takes device pointers) a runner
    /// on CUDA returns a device pointer and no host copy is made; otherwise host floats.
    /// </summary>
    GradientBucketView GradientBucket(bool deviceMemory);

    /// <summary>This rank's statistics of the step in progress (see <see cref="StepStats"/>).</summary>
    double[] StepStatistics();

    /// <summary>
    /// Normalises the summed gradients with the committed <paramref name="totals"/> (every rank's statistics summed),
    /// clips, steps the optimizer for global step <paramref name="globalStep"/>, and zeroes for the next step. The
    /// <paramref name="lead"/> rank (rank 0) also logs the step.
    /// </summary>
    void OptimizerStep(long globalStep, double[] totals, bool lead);

    /// <summary>Fingerprint of the LoRA parameters (see AllReduce.LoraChecksum); equal on every rank between steps.</summary>
    ulong LoraChecksum();

    void DiscardGradients();

    /// <summary>
    /// Writes a checkpoint of the state after <paramref name="globalStep"/> committed steps and returns where; with
    /// <paramref name="counts"/> its trainer state records the coordinator's early-stopping counts, not this runner's.
    /// </summary>
    string SaveCheckpoint(string runId, long globalStep, string tag, bool final, EarlyStoppingCounts? counts = null);

    /// <summary>Validation loss after <paramref name="globalStep"/> steps; <paramref name="counts"/>: the run's counts before it.</summary>
    double Validate(string runId, long globalStep, EarlyStoppingCounts? counts = null);

    /// <summary>The committed state a newcomer needs to continue exactly (adapter, optimizer moments and steps, counters, RNG).</summary>
    NamedTensor[] ExportState();

    /// <summary>Replaces this worker's state with one exported by a peer (between steps).</summary>
    void ImportState(NamedTensor[] state);

    /// <summary>
    /// Replaces this worker's state with the checkpoint of <paramref name="step"/> steps in <paramref name="dir"/> (null:
    /// the run's initial adapter), between steps; with <paramref name="cutMetricsLog"/> the run's metrics log loses the
    /// records of later steps when it is next written.
    /// </summary>
    void RestoreCheckpoint(string? dir, long step, bool cutMetricsLog) =>
        throw new NotSupportedException($"{GetType().Name} cannot restore checkpoints");
}

/// <summary>Host floats or a device pointer: whichever the loaded backend needs.</summary>
public readonly record struct GradientBucketView(Memory<float> Host, IntPtr Device, long Count);
