using System.Runtime.CompilerServices;

namespace HiggsCluster.Tests;

internal static class QuietTorch
{
    [ModuleInitializer]
    internal static void Init() => HiggsCluster.Training.TorchRuntime.QuietNativeLogs();
}
