using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using HiggsCluster.Cli.Node;
using HiggsCluster.Cli.Security;

namespace HiggsCluster.Tests.Cluster;

/// <summary>
/// One cluster CA per test run, made by the same code as `higgs cluster certs`, with a few node certificates; and a
/// second, unrelated CA for strangers. Every test that starts `higgs node` processes gives them a certificate from here.
/// </summary>
internal static class TestClusterCerts
{
    public const string EnvVar = "HIGGS_NODE__REMOTETLSCERT";

    private static readonly Lazy<string> Root = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("higgs-test-ca-").FullName;
        ClusterCertificates.WriteDirectory(Path.Combine(dir, "cluster"), new[] { "node", "node-b", "node-c" }, null);
        ClusterCertificates.WriteDirectory(Path.Combine(dir, "other"), new[] { "stranger" }, null);
        // strangers that know the cluster CA's public certificate (it is no secret) and bundle it, so their node starts
        // and trusts the cluster; only their own certificate is wrong: self-signed, or issued by another CA
        using var clusterCa = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dir, "cluster", ClusterCertificates.CaFile), null);
        using var otherCa = X509CertificateLoader.LoadPkcs12FromFile(Path.Combine(dir, "other", ClusterCertificates.CaFile), null);
        using var selfSigned = SelfSigned("stranger-self");
        File.WriteAllBytes(Path.Combine(dir, "self-signed.pfx"), ClusterCertificates.NodePfx(selfSigned, clusterCa, null));
        using var otherLeaf = ClusterCertificates.Issue(otherCa, "stranger-other", TimeSpan.FromDays(1));
        File.WriteAllBytes(Path.Combine(dir, "other-ca-bundled.pfx"), ClusterCertificates.NodePfx(otherLeaf, clusterCa, null));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(dir, true); } catch (IOException) { } };
        return dir;
    });

    public static string ClusterDir => Path.Combine(Root.Value, "cluster");
    /// <summary>A node certificate of the test cluster (every node may share it: any certificate of the CA is a member).</summary>
    public static string NodePfx => Path.Combine(ClusterDir, "node.pfx");
    public static string Pfx(string name) => Path.Combine(ClusterDir, name + ".pfx");
    /// <summary>A node certificate issued by another CA.</summary>
    public static string OtherCaPfx => Path.Combine(Root.Value, "other", "stranger.pfx");

    /// <summary>A self-signed node certificate bundled with the cluster CA's public certificate.</summary>
    public static string SelfSignedPfx => Path.Combine(Root.Value, "self-signed.pfx");
    /// <summary>A certificate of another CA bundled with the cluster CA's public certificate.</summary>
    public static string OtherCaBundledPfx => Path.Combine(Root.Value, "other-ca-bundled.pfx");

    public static RemoteTlsOptions Remote => new(NodePfx, null);

    private static X509Certificate2 SelfSigned(string name)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        using var c = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddHours(-1), DateTimeOffset.UtcNow.AddDays(1));
        return X509CertificateLoader.LoadPkcs12(c.Export(X509ContentType.Pkcs12), null);
    }
}
