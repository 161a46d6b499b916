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
    public static HiggsAudioModel LoadBase(TrainOptions o)
    {
        var device = TorchDevices.Resolve(o.Device);
        torch.manual_seed(o.Seed);
        var model = Checkpoint.LoadModel(o.BaseCheckpoint, o.Precision(device), device);
        model.GradientCheckpointing = o.GradientCheckpointing;
        return model;
    }

    public static LoraAdapter Attach(HiggsAudioModel model, TrainOptions o) =>
        LoraAdapter.Attach(model, o.ToLoraConfig(), o.Precision(model.Device).LoraDType, new Generator((ulong)o.Seed));
}
