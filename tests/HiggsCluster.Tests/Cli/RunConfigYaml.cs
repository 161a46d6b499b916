using HiggsCluster.Training.Engine;

namespace HiggsCluster.Tests.Cli;

/// <summary>Writes training options as a run config YAML (flat "section.key" keys, as the config reader accepts).</summary>
internal static class RunConfigYaml
{
    public static string Write(string path, TrainOptions o)
    {
        File.WriteAllLines(path, o.Resolved().Where(kv => kv.Value.Length > 0).Select(kv => $"'{kv.Key}': '{kv.Value.Replace("'", "''")}'"));
        return path;
    }
}
