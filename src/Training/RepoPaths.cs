namespace HiggsCluster.Training;

/// <summary>Locates the repository root (the folder holding HiggsCluster.sln) and the shared folder beside it.</summary>
public static class RepoPaths
{
    public static string? FindRoot(string? start = null)
    {
        foreach (var s in new[] { start, Environment.CurrentDirectory, AppContext.BaseDirectory })
        {
            if (s == null) continue;
            for (var d = new DirectoryInfo(s); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "HiggsCluster.sln"))) return d.FullName;
        }
        return null;
    }

    public static string Root => FindRoot() ?? throw new InvalidOperationException("cannot find the repository root (HiggsCluster.sln)");

    /// <summary>../shared/goldens relative to the repository root.</summary>
    public static string DefaultGoldens => Path.GetFullPath(Path.Combine(Root, "..", "shared", "goldens"));
}
