using HiggsCluster.Cli.Grammar;
using System.Security.Cryptography.X509Certificates;
using Akka.Remote.Hosting;
using HiggsCluster.Cli.Commands;
using Microsoft.Extensions.Configuration;

namespace HiggsCluster.Cli.Node;

/// <summary>
/// TLS for Akka remoting: every node presents the same PFX (or one signed by the same CA) and accepts a peer whose
/// certificate chains to it. Mutual authentication is on, hostname checks are off (nodes are addressed by IP).
/// </summary>
public sealed record RemoteTlsOptions(string Certificate, string? Password)
{
    /// <summary>--remote-tls-cert F.pfx / HIGGS_NODE__REMOTETLSCERT, password from HIGGS_REMOTE_TLS_PASSWORD.</summary>
    public static RemoteTlsOptions? From(IConfiguration node, CliArgs args)
    {
        var cert = args.Get("remote-tls-cert") ?? node["RemoteTlsCert"];
        if (string.IsNullOrEmpty(cert)) return null;
        if (!File.Exists(cert)) throw new CliUsageException($"--remote-tls-cert: file not found: {cert}");
        return new RemoteTlsOptions(Path.GetFullPath(cert), Environment.GetEnvironmentVariable("HIGGS_REMOTE_TLS_PASSWORD"));
    }

    public static RemoteOptions Apply(RemoteTlsOptions? tls, RemoteOptions remote)
    {
        if (tls is null) return remote;
        var cert = X509CertificateLoader.LoadPkcs12FromFile(tls.Certificate, tls.Password, X509KeyStorageFlags.Exportable);
        remote.EnableSsl = true;
        remote.Ssl = new SslOptions
        {
            X509Certificate = cert,
            RequireMutualAuthentication = true,
            ValidateCertificateHostname = false,
            CustomValidator = (peer, _, _, _, _) => peer is not null && ChainsTo(peer, cert),
        };
        return remote;
    }

    /// <summary>The peer is our own certificate, or chains to it as a root (a private CA).</summary>
    private static bool ChainsTo(X509Certificate2 peer, X509Certificate2 trusted)
    {
        if (peer.RawData.AsSpan().SequenceEqual(trusted.RawData)) return true;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        return chain.Build(peer);
    }
}
