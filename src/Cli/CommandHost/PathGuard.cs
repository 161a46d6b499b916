namespace HiggsCluster.Cli.CommandHost;

/// <summary>
/// Keeps submitted runs inside the configured roots. A path is resolved the way the kernel will open it: component
/// by component, following every symbolic link before applying the next "..", so neither "../" nor a link that
/// points out of a root can escape. Components that do not exist yet (a new output folder) are taken as written.
/// </summary>
public static class PathGuard
{
    private const int MaxLinkHops = 40;

    public static string RealPath(string path)
    {
        var full = Path.IsPathRooted(path) ? path : Path.Combine(Directory.GetCurrentDirectory(), path);
        var pending = new LinkedList<string>(full.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var parts = new List<string>();
        int hops = 0;
        while (pending.First is { } first)
        {
            var c = first.Value;
            pending.RemoveFirst();
            if (c == ".") continue;
            if (c == "..") { if (parts.Count > 0) parts.RemoveAt(parts.Count - 1); continue; }
            var candidate = "/" + string.Join('/', parts.Append(c));
            var link = new FileInfo(candidate).LinkTarget;
            if (link is null) { parts.Add(c); continue; }
            if (++hops > MaxLinkHops) throw new IOException($"too many levels of symbolic links in {path}");
            if (link.StartsWith('/')) parts.Clear();
            var node = pending.First;
            foreach (var t in link.Split('/', StringSplitOptions.RemoveEmptyEntries))
                if (node is null) pending.AddLast(t); else pending.AddBefore(node, t);
        }
        return "/" + string.Join('/', parts);
    }

    public static bool IsUnder(string realPath, string root)
    {
        var r = RealPath(root).TrimEnd('/');
        return realPath == r || realPath.StartsWith(r + "/", StringComparison.Ordinal) || r.Length == 0;
    }

    /// <summary>Null when <paramref name="path"/> resolves under one of <paramref name="roots"/>, else the reason.</summary>
    public static string? Check(string key, string path, IReadOnlyList<string> roots, string rootKind)
    {
        string real;
        try { real = RealPath(path); }
        catch (IOException e) { return $"{key}: {e.Message}"; }
        if (roots.Any(r => IsUnder(real, r))) return null;
        var shown = real == Path.GetFullPath(path) ? path : $"{path} (resolves to {real})";
        return $"{key} = {shown} is outside the {rootKind} ({string.Join(", ", roots)})";
    }
}
