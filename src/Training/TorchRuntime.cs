using System.Runtime.InteropServices;

namespace HiggsCluster.Training;

/// <summary>Process-wide settings libtorch must see before it loads.</summary>
public static class TorchRuntime
{
    [DllImport("libc", SetLastError = true)]
    private static extern int setenv(string name, string value, int overwrite);

    /// <summary>
    /// Keeps libtorch's hardware notices (e.g. "Could not initialize NNPACK", printed on every conv on CPUs without it)
    /// off the console. libtorch reads the native environment when it loads, which .NET's SetEnvironmentVariable
    /// does not change, hence setenv. Call before the first tensor operation; a value the user set wins.
    /// </summary>
    public static void QuietNativeLogs()
    {
        if (Environment.GetEnvironmentVariable("TORCH_CPP_LOG_LEVEL") is not null) return;
        Environment.SetEnvironmentVariable("TORCH_CPP_LOG_LEVEL", "ERROR");
        if (OperatingSystem.IsLinux() || OperatingSystem.IsMacOS()) setenv("TORCH_CPP_LOG_LEVEL", "ERROR", 0);
    }
}
