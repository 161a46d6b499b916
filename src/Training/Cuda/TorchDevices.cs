using System.Reflection;
using HiggsCluster.Training.Engine;
using TorchSharp;
using static TorchSharp.torch;
using HiggsCluster.Planning;

namespace HiggsCluster.Training.Cuda;

/// <summary>
/// Turns a <c>model.device</c> value into a torch device, refusing what this build or this machine cannot give with a
/// message that names the way out (the backend switch), instead of a native exception deep in the first kernel.
/// </summary>
public static class TorchDevices
{
    /// <summary>CUDA devices the loaded libtorch sees (0 with a CPU libtorch).</summary>
    public static int VisibleCudaDevices() => cuda.is_available() ? cuda.device_count() : 0;

    /// <summary>The libtorch backend this build was compiled against (cpu or cuda), stamped by MSBuild.</summary>
    public static string BuildBackend { get; } =
        typeof(TorchDevices).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().FirstOrDefault(a => a.Key == "TorchBackend")?.Value ?? "cpu";

    public static bool IsCuda(string device) => device == "cuda" || device.StartsWith("cuda:", StringComparison.Ordinal);

    /// <summary>
    /// The device, or a <see cref="TrainConfigException"/> naming <paramref name="key"/>. <paramref name="cudaCount"/>
    /// is the number of CUDA devices libtorch sees (asked lazily: a CPU build never touches CUDA).
    /// </summary>
    public static Device Resolve(string device, string key = "model.device", string? backend = null, Func<int>? cudaCount = null)
    {
        if (device == "cpu") return CPU;
        if (!IsCuda(device)) throw new TrainConfigException(key, $"'{device}' is not cpu, cuda or cuda:N");
        int index = 0;
        if (device.Length > 4 && (!int.TryParse(device.AsSpan(5), out index) || index < 0))
            throw new TrainConfigException(key, $"'{device}' is not cpu, cuda or cuda:N");
        // the libtorch that is loaded decides: a CPU build run over an installed CUDA PyTorch (HIGGS_LIBTORCH_DIR, the
        // gpu-kit) sees its GPUs; a CPU build over its own CPU libtorch never does, and the switch is the way out
        int count = (cudaCount ?? VisibleCudaDevices)();
        if (count == 0 && (backend ?? BuildBackend) != "cuda")
            throw new TrainConfigException(key, $"{device} asked of a CPU build of higgs: rebuild with HIGGS_TORCH_BACKEND=cuda " +
                $"(./higgs does it; or dotnet build -p:TorchBackend=cuda), or set {key} to cpu");
        if (count == 0)
            throw new TrainConfigException(key, $"{device}: this CUDA build sees no GPU (driver, CUDA_VISIBLE_DEVICES or libtorch's CUDA libraries; nvidia-smi should list one)");
        if (index >= count)
            throw new TrainConfigException(key, $"{device}: only {count} CUDA device(s) visible (cuda:0..cuda:{count - 1})");
        return new Device(DeviceType.CUDA, index);
    }
}
