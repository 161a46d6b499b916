using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli.Security;

/// <summary>
/// `higgs cluster certs --out DIR [--nodes a,b,c]`: the cluster CA (created once, reused on later calls) and a PFX per
/// node. Run it again with more names to add nodes; existing files are never overwritten.
/// </summary>
public static class ClusterCertsCommand
{
    public const string Help = "cluster certs --out DIR [--nodes a,b,c]   create the cluster CA and one certificate per node (PFX, 0600) for --remote-tls-cert";

    public static int Run(CliArgs args, TextWriter stdout, TextWriter stderr)
    {
        var dir = Path.GetFullPath(args.Required("cluster certs", "out"));
        foreach (var k in args.Keys)
            if (k is not ("out" or "nodes")) throw new CliUsageException($"cluster certs: unknown option --{k}");
        if (args.Positional.Count > 0) throw new CliUsageException($"cluster certs: unexpected argument '{args.Positional[0]}'");
        var nodes = args.All("nodes").SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        if (args.Get("nodes") is "true") throw new CliUsageException("cluster certs: --nodes needs names, e.g. --nodes seed-1,worker-0");
        var written = ClusterCertificates.WriteDirectory(dir, nodes, Environment.GetEnvironmentVariable("HIGGS_REMOTE_TLS_PASSWORD"));
        foreach (var f in written) stdout.WriteLine($"wrote {f}");
        var skipped = nodes.Distinct().Count(n => !written.Contains(Path.Combine(dir, n + ".pfx")));
        if (skipped > 0) stdout.WriteLine($"kept {skipped} existing node certificate(s)");
        stdout.WriteLine($"start each node with --remote-tls-cert {Path.Combine(dir, "NAME.pfx")}; keep {ClusterCertificates.CaFile} off the nodes (it issues new members)");
        return 0;
    }
}
