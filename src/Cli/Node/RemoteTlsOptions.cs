using HiggsCluster.Cli.Grammar;
using System.Security.Cryptography.X509Certificates;
using Akka.Remote.Hosting;
using HiggsCluster.Cli.Commands;
using HiggsCluster.Cli.Security;
using Microsoft.Extensions.Configuration;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// TLS for Akka remoting with mutual authentication: a node presents the certificate in its PFX and accepts a peer
/// only when the peer's certificate was issued by the cluster CA that the same PFX holds (see
/// <see cref="ClusterCertificates"/>). Judged against that CA alone, never the machine's store; hostname checks are
/// off (nodes are addressed by IP).
/// </summary>
public sealed record RemoteTlsOptions(string Certificate, string? Password)
{
    /// <summary>--remote-tls-cert F.pfx / HIGGS_NODE__REMOTETLSCERT, password from HIGGS_REMOTE_TLS_PASSWORD; read here so a bad file is a usage error.</summary>
    public static RemoteTlsOptions? From(IConfiguration node, CliArgs args)
    {
        var cert = args.Get("remote-tls-cert") ?? node["RemoteTlsCert"];
        if (string.IsNullOrEmpty(cert)) return null;
        if (!File.Exists(cert)) throw new CliUsageException($"--remote-tls-cert: file not found: {cert}");
        var o = new RemoteTlsOptions(Path.GetFullPath(cert), Environment.GetEnvironmentVariable("HIGGS_REMOTE_TLS_PASSWORD"));
        var (leaf, ca) = ClusterCertificates.LoadNode(o.Certificate, o.Password);
        leaf.Dispose();
        ca.Dispose();
        return o;
    }

    /// <summary>
    /// A cluster CA and node certificate that live as long as this process: for the clusters that `higgs train` and
    /// `higgs demo` start for themselves. The PFX (for worker processes this one starts) is written owner-only to a
    /// private temporary folder, removed when the process exits.
    /// </summary>
    public static RemoteTlsOptions Throwaway() => ThrowawayCert.Value;

    private static readonly Lazy<RemoteTlsOptions> ThrowawayCert = new(() =>
    {
        var dir = Directory.CreateTempSubdirectory("higgs-tls-");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir.FullName, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { dir.Delete(recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { } };
        ClusterCertificates.WriteDirectory(dir.FullName, new[] { "local" }, null);
        // the CA's key is not needed once the one node certificate is issued
        File.Delete(Path.Combine(dir.FullName, ClusterCertificates.CaFile));
        return new RemoteTlsOptions(Path.Combine(dir.FullName, "local.pfx"), null);
    });

    public static RemoteOptions Apply(RemoteTlsOptions? tls, RemoteOptions remote)
    {
        if (tls is null) return remote;
        var (cert, ca) = ClusterCertificates.LoadNode(tls.Certificate, tls.Password);
        remote.EnableSsl = true;
        remote.Ssl = new SslOptions
        {
            X509Certificate = cert,
            RequireMutualAuthentication = true,
            ValidateCertificateHostname = false,
            CustomValidator = (peer, _, _, _, _) => peer is not null && ClusterCertificates.IssuedBy(peer, ca),
        };
        return remote;
    }
}
