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

    /// <summary>Values of the <c>model.dtype</c> key: auto follows the device, the others fix the base dtype.</summary>
    public static readonly IReadOnlyList<string> Names = new[] { "auto", "bf16", "fp32" };

    public static PrecisionPolicy For(Device device) => device.type == TorchSharp.DeviceType.CUDA ? Gpu : Cpu;

    /// <summary>
    /// The policy of a run: <c>auto</c> = <see cref="For(Device)"/>; <c>bf16</c> on the CPU is allowed (slow) and is how
    /// the GPU path is tested without a GPU. Only the base changes: LoRA, its optimizer state and the loss stay fp32.
    /// </summary>
    public static PrecisionPolicy For(string dtype, Device device) => dtype switch
    {
        "auto" => For(device),
        "bf16" => Gpu,
        "fp32" => Cpu,
        _ => throw new ArgumentException($"'{dtype}' is not one of {string.Join(", ", Names)}", nameof(dtype)),
    };
}
