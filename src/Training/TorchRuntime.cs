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

    private static int _heapTuned;

    /// <summary>
    /// Keeps freed native memory in the process heap for reuse instead of handing it back to the kernel. glibc serves
    /// blocks above its mmap threshold (at most 32 MiB) as fresh mappings and trims the heap top on free, so every big
    /// temporary of a CPU audio encode (one 64-channel DAC activation of a 5 s clip is 30 MB, of a 20 s clip 123 MB)
    /// is page-faulted in again, zeroed by the kernel, on each op: 50k-900k minor faults per encode. With mmap off
    /// and no trimming, an encode on the main thread runs ~5% (5 s clip) to ~20% (20 s clip) faster
    /// (<c>AudioTokenizerBench</c>). Other threads allocate from glibc's per-thread heaps (64 MB each, created and
    /// unmapped as needed), where this helps little, so only single-threaded encoders call it (<c>higgs data
    /// encode</c>, the bench). The cost is a resident size that stays at its peak. Returns whether this call applied
    /// the settings; a user's own <c>GLIBC_TUNABLES</c> wins, and other C libraries are left alone.
    /// </summary>
    public static bool KeepFreedHostMemory()
    {
        if (Interlocked.Exchange(ref _heapTuned, 1) == 1) return false;
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("GLIBC_TUNABLES") is { Length: > 0 }) return false;
        try
        {
            if (GnuLibcVersion() is null) return false;
            return Mallopt(TrimThreshold, int.MaxValue) == 1 && Mallopt(MmapMax, 0) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    private const int TrimThreshold = -1, MmapMax = -4; // M_TRIM_THRESHOLD, M_MMAP_MAX of <malloc.h>

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);

    [DllImport("libc", EntryPoint = "gnu_get_libc_version")]
    private static extern IntPtr GnuGetLibcVersion();

    private static string? GnuLibcVersion() => Marshal.PtrToStringAnsi(GnuGetLibcVersion());
}
