using System.Security.Cryptography.X509Certificates;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Security;
using HiggsCluster.Tests.Audio;
using HiggsCluster.Tests.Cluster;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>`higgs cluster certs`: a cluster CA, node certificates it issued, and who counts as a member.</summary>
[Trait("Category", "Cli")]
public sealed class ClusterCertificatesTests : IDisposable
{
    private readonly TempDir _dir = new();

    private static (int Code, string Out, string Err) Higgs(params string[] args)
    {
        var (o, e) = (new StringWriter(), new StringWriter());
        int code;
        try { code = CommandTable.Dispatch(args, o, e); }
        catch (CliUsageException ex) { e.WriteLine(ex.Message); code = 2; }
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public void Certs_makes_a_CA_and_owner_only_node_files_and_adds_nodes_later_with_the_same_CA()
    {
        var dir = Path.Combine(_dir.Path, "certs");
        var first = Higgs("cluster", "certs", "--out", dir, "--nodes", "seed-1,worker-0");
        Assert.True(first.Code == 0, first.Err);
        foreach (var f in new[] { ClusterCertificates.CaFile, "seed-1.pfx", "worker-0.pfx" })
        {
            Assert.Contains(Path.Combine(dir, f), first.Out);
            if (!OperatingSystem.IsWindows())
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(dir, f)));
        }
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", File.ReadAllText(Path.Combine(dir, ClusterCertificates.CaCertFile)));
        var seedBytes = File.ReadAllBytes(Path.Combine(dir, "seed-1.pfx"));

        var second = Higgs("cluster", "certs", "--out", dir, "--nodes", "seed-1,loader-0");
        Assert.True(second.Code == 0, second.Err);
        Assert.Contains("kept 1 existing", second.Out);
        Assert.Equal(seedBytes, File.ReadAllBytes(Path.Combine(dir, "seed-1.pfx")));

        var (seed, ca1) = ClusterCertificates.LoadNode(Path.Combine(dir, "seed-1.pfx"), null);
        var (loader, ca2) = ClusterCertificates.LoadNode(Path.Combine(dir, "loader-0.pfx"), null);
        using (seed) using (ca1) using (loader) using (ca2)
        {
            Assert.Equal(ca1.RawData, ca2.RawData);
            Assert.Equal("CN=seed-1", seed.Subject);
            Assert.True(seed.HasPrivateKey);
            Assert.False(ca1.HasPrivateKey); // a node never holds the CA's key
            Assert.True(ClusterCertificates.IssuedBy(loader, ca1));
            Assert.True(ClusterCertificates.IssuedBy(seed, ca2));
        }
    }

    [Fact]
    [Trait("Category", "Adversarial")]
    public void Only_certificates_issued_by_the_cluster_CA_are_members()
    {
        var (node, ca) = ClusterCertificates.LoadNode(TestClusterCerts.NodePfx, null);
        var (sibling, _) = ClusterCertificates.LoadNode(TestClusterCerts.Pfx("node-b"), null);
        var (other, _) = ClusterCertificates.LoadNode(TestClusterCerts.OtherCaPfx, null);
        var (selfSigned, caInBundle) = ClusterCertificates.LoadNode(TestClusterCerts.SelfSignedPfx, null);
        var (otherBundled, _) = ClusterCertificates.LoadNode(TestClusterCerts.OtherCaBundledPfx, null);
        using var caItself = X509CertificateLoader.LoadCertificate(ca.RawData);
        Assert.Equal(ca.RawData, caInBundle.RawData); // the strangers trust the cluster; the cluster must not trust them
        Assert.True(ClusterCertificates.IssuedBy(node, ca));
        Assert.True(ClusterCertificates.IssuedBy(sibling, ca));
        Assert.False(ClusterCertificates.IssuedBy(other, ca));
        Assert.False(ClusterCertificates.IssuedBy(selfSigned, ca));
        Assert.False(ClusterCertificates.IssuedBy(otherBundled, ca));
        Assert.False(ClusterCertificates.IssuedBy(caItself, ca));
    }

    [Fact]
    public void Bad_node_names_and_options_are_one_line_usage_errors()
    {
        var bad = Higgs("cluster", "certs", "--out", _dir.Path, "--nodes", "../evil");
        Assert.Equal(2, bad.Code);
        Assert.Contains("'../evil' is not a node name", bad.Err);
        Assert.False(File.Exists(Path.Combine(_dir.Path, "..", "evil.pfx")));
        var noOut = Higgs("cluster", "certs", "--nodes", "a");
        Assert.Equal(2, noOut.Code);
        Assert.Contains("--out", noOut.Err);
        Assert.Equal(2, Higgs("cluster", "certs", "--out", _dir.Path, "--node", "a").Code);
    }

    public void Dispose() => _dir.Dispose();
}
