using static TorchSharp.torch;

namespace HiggsCluster.Training.Model;

/// <summary>
/// The one place that decides dtypes. CPU: everything fp32 (bf16 matmul is ~70× slower there). GPU: the frozen base
/// in bf16, LoRA weights and optimizer state in fp32, logits cast to fp32 before the loss.
/// </summary>
public sealed record PrecisionPolicy(ScalarType BaseDType, ScalarType LoraDType, ScalarType LossDType)
{
    public static readonly PrecisionPolicy Cpu = new(ScalarType.Float32, ScalarType.Float32, ScalarType.Float32);
    public static readonly PrecisionPolicy Gpu = new(ScalarType.BFloat16, ScalarType.Float32, ScalarType.Float32);

    public static PrecisionPolicy For(Device device) => device.type == TorchSharp.DeviceType.CUDA ? Gpu : Cpu;
}
