using System.Runtime.InteropServices;
using TorchSharp;

namespace HiggsCluster.Training;

/// <summary>Process-wide libtorch settings.</summary>
public static class TorchRuntime
{
    private static int _quieted;

    /// <summary>
    /// Raises libtorch's own log threshold to errors. Without it, every convolution on a CPU without NNPACK support
    /// prints "Could not initialize NNPACK" (hundreds of lines per run). libtorch only honours TORCH_CPP_LOG_LEVEL when
    /// Python initialises its logging, so the threshold variable of libc10 is set directly. A user who sets
    /// TORCH_CPP_LOG_LEVEL keeps libtorch's default.
    /// </summary>
    public static void QuietNativeLogs()
    {
        if (Interlocked.Exchange(ref _quieted, 1) == 1) return;
        if (Environment.GetEnvironmentVariable("TORCH_CPP_LOG_LEVEL") is not null) return;
        torch.InitializeDeviceType(DeviceType.CPU); // loads libtorch (and libc10) if nothing has yet
        if (!NativeLibrary.TryLoad("libc10.so", out var c10)) return;
        if (NativeLibrary.TryGetExport(c10, "FLAGS_caffe2_log_level", out var level))
            Marshal.WriteInt32(level, 2); // 0 info, 1 warning, 2 error
    }
}
