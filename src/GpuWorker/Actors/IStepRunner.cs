using HiggsCluster.Messages;

namespace HiggsCluster.GpuWorker.Actors;

/// <summary>
/// The training engine as the worker actor drives it: one model + LoRA loaded once; micro-steps accumulate
/// gradients into one flat bucket; after the all-reduce the optimizer steps identically on every rank.
/// </summary>
public interface IStepRunner
{
    /// <summary>Forward + backward of one micro-batch; returns its loss. Gradients accumulate.</summary>
    double MicroStep(BatchDelivery batch);

    /// <summary>The flat gradient bucket the all-reduce sums in place.</summary>
    GradientBucketView GradientBucket();

    /// <summary>Steps the optimizer on the summed gradients of <paramref name="worldSize"/> ranks and zeroes them.</summary>
    void OptimizerStep(int worldSize);

    /// <summary>Fingerprint of the LoRA parameters (see AllReduce.LoraChecksum); equal on every rank between steps.</summary>
    ulong LoraChecksum();

    void DiscardGradients();

    /// <summary>Writes a checkpoint and returns where.</summary>
    string SaveCheckpoint(string runId, long globalStep, string tag);

    double Validate(string runId, long globalStep);
}

/// <summary>Host floats or a device pointer: whichever the loaded backend needs.</summary>
public readonly record struct GradientBucketView(Memory<float> Host, IntPtr Device, long Count);
