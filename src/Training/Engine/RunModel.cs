using HiggsCluster.Training.Cuda;
using HiggsCluster.Training.Lora;
using HiggsCluster.Training.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace HiggsCluster.Training.Engine;

/// <summary>
/// How every run builds its model: the device checked (<see cref="TorchDevices"/>), the base loaded in the dtype of the
/// run's <see cref="PrecisionPolicy"/> (bf16 on CUDA, fp32 on the CPU, <c>model.dtype</c> overrides), activation
/// checkpointing as configured, and LoRA attached in fp32 from the run's seed. The engine loop and the cluster's
/// workers both come here, so they cannot drift apart in precision.
/// </summary>
public static class RunModel
{
    /// <param name="shared">The process's host copy of the base, when it builds several models (else read from disk).</param>
    public static HiggsAudioModel LoadBase(TrainOptions o, BaseModels? shared = null)
    {
        var device = TorchDevices.Resolve(o.Device);
        var dtype = o.Precision(device).BaseDType;
        HiggsAudioModel model;
        if (shared is not null) model = shared.Copy(o.BaseModelDir, dtype, device, o.Seed);
        else
        {
            torch.manual_seed(o.Seed);
            model = BaseModels.Read(o.BaseModelDir, dtype, device);
        }
        model.GradientCheckpointing = o.GradientCheckpointing;
        return model;
    }

    public static LoraAdapter Attach(HiggsAudioModel model, TrainOptions o) =>
        LoraAdapter.Attach(model, o.ToLoraConfig(), o.Precision(model.Device).LoraDType, new Generator((ulong)o.Seed));
}
