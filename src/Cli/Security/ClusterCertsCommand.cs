using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Grammar;

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
        var nodes = args.All("nodes").SelectMany(v => v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)).ToList();
        var written = ClusterCertificates.WriteDirectory(dir, nodes, Environment.GetEnvironmentVariable("HIGGS_REMOTE_TLS_PASSWORD"));
        foreach (var f in written) stdout.WriteLine($"wrote {f}");
        var skipped = nodes.Distinct().Count(n => !written.Contains(Path.Combine(dir, n + ".pfx")));
        if (skipped > 0) stdout.WriteLine($"kept {skipped} existing node certificate(s)");
        stdout.WriteLine($"start each node with --remote-tls-cert {Path.Combine(dir, "NAME.pfx")}; keep {ClusterCertificates.CaFile} off the nodes (it issues new members)");
        return 0;
    }
}
