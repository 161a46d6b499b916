using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using HiggsCluster.Cli.Commands;

namespace HiggsCluster.Cli.Security;

/// <summary>
/// The trust of a cluster: one private CA, and one certificate per node issued by it. A node's PFX holds its own
/// certificate with the private key plus the CA's certificate (no CA key), so a node needs one file to both prove
/// itself and judge its peers. The CA's key stays in <see cref="CaFile"/>, needed only to issue more node certificates.
/// </summary>
public static class ClusterCertificates
{
    public const string CaFile = "cluster-ca.pfx";
    public const string CaCertFile = "cluster-ca.crt";
    public static readonly TimeSpan CaLifetime = TimeSpan.FromDays(3650);
    public static readonly TimeSpan NodeLifetime = TimeSpan.FromDays(825);

    private static readonly Oid ServerAuth = new("1.3.6.1.5.5.7.3.1");
    private static readonly Oid ClientAuth = new("1.3.6.1.5.5.7.3.2");

    public static X509Certificate2 CreateCa(string name, TimeSpan lifetime)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest(new X500DistinguishedName($"CN={name}"), key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, true, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        var now = DateTimeOffset.UtcNow;
        using var ca = req.CreateSelfSigned(now.AddHours(-1), now.Add(lifetime));
        // a round trip through PKCS#12 gives a key that TLS on every platform can use
        return X509CertificateLoader.LoadPkcs12(ca.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.Exportable);
    }

    /// <summary>A node certificate (with its key) issued by <paramref name="ca"/>, good for both ends of a TLS connection.</summary>
    public static X509Certificate2 Issue(X509Certificate2 ca, string node, TimeSpan lifetime)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var req = new CertificateRequest(new X500DistinguishedName($"CN={node}"), key, HashAlgorithmName.SHA256);
        req.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyAgreement, true));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { ServerAuth, ClientAuth }, false));
        req.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(req.PublicKey, false));
        req.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(ca, true, false));
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(node);
        req.CertificateExtensions.Add(san.Build());
        var now = DateTimeOffset.UtcNow;
        var notAfter = now.Add(lifetime) < ca.NotAfter ? now.Add(lifetime) : new DateTimeOffset(ca.NotAfter.ToUniversalTime());
        var serial = RandomNumberGenerator.GetBytes(16);
        serial[0] &= 0x7f;
        using var pub = req.Create(ca, now.AddHours(-1), notAfter, serial);
        using var withKey = pub.CopyWithPrivateKey(key);
        return X509CertificateLoader.LoadPkcs12(withKey.Export(X509ContentType.Pkcs12), null, X509KeyStorageFlags.Exportable);
    }

    /// <summary>A node's PFX: its certificate and key, and the CA's certificate without the CA's key.</summary>
    public static byte[] NodePfx(X509Certificate2 node, X509Certificate2 ca, string? password)
    {
        using var caPublic = X509CertificateLoader.LoadCertificate(ca.RawData);
        return new X509Certificate2Collection { node, caPublic }.Export(X509ContentType.Pkcs12, password)!;
    }

    /// <summary>
    /// Creates <paramref name="dir"/>'s CA (or reuses the one there) and a certificate for each node that has none yet.
    /// Returns the files written. Private keys are written owner-only (0600).
    /// </summary>
    public static IReadOnlyList<string> WriteDirectory(string dir, IReadOnlyList<string> nodes, string? password)
    {
        foreach (var n in nodes)
            if (n.Length == 0 || n.Length > 64 || !n.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') || n.StartsWith('.') || n == "cluster-ca")
                throw new CliUsageException($"--nodes: '{n}' is not a node name (letters, digits, '-', '_', '.'; at most 64)");
        Directory.CreateDirectory(dir);
        var written = new List<string>();
        var caPath = Path.Combine(dir, CaFile);
        X509Certificate2 ca;
        if (File.Exists(caPath))
        {
            try { ca = X509CertificateLoader.LoadPkcs12FromFile(caPath, password, X509KeyStorageFlags.Exportable); }
            catch (CryptographicException e) { throw new CliUsageException($"{caPath}: not a readable cluster CA ({e.Message})"); }
            if (!ca.HasPrivateKey || !IsCa(ca)) throw new CliUsageException($"{caPath}: not a cluster CA with its private key");
        }
        else
        {
            ca = CreateCa("higgs cluster CA " + Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant(), CaLifetime);
            WritePrivate(caPath, ca.Export(X509ContentType.Pkcs12, password)!);
            File.WriteAllText(Path.Combine(dir, CaCertFile), ca.ExportCertificatePem() + "\n");
            written.Add(caPath);
            written.Add(Path.Combine(dir, CaCertFile));
        }
        using (ca)
        {
            foreach (var n in nodes.Distinct())
            {
                var path = Path.Combine(dir, n + ".pfx");
                if (File.Exists(path)) continue;
                using var cert = Issue(ca, n, NodeLifetime);
                WritePrivate(path, NodePfx(cert, ca, password));
                written.Add(path);
            }
        }
        return written;
    }

    /// <summary>
    /// Reads a node's PFX: its own certificate (with key) and the cluster CA it trusts (a CA certificate without key; the
    /// node's issuer when several). Whether the CA issued the node's own certificate is for its peers to judge: a node
    /// whose certificate it did not issue starts, and every member refuses it.
    /// </summary>
    public static (X509Certificate2 Node, X509Certificate2 Ca) LoadNode(string path, string? password)
    {
        X509Certificate2Collection all;
        try { all = X509CertificateLoader.LoadPkcs12CollectionFromFile(path, password, X509KeyStorageFlags.Exportable); }
        catch (CryptographicException e) { throw new CliUsageException($"--remote-tls-cert {path}: not a readable PFX ({e.Message}; password from HIGGS_REMOTE_TLS_PASSWORD)"); }
        var node = all.FirstOrDefault(c => c.HasPrivateKey && !IsCa(c));
        var cas = all.Where(c => !c.HasPrivateKey && IsCa(c)).ToList();
        var ca = node is null ? null : cas.FirstOrDefault(c => c.SubjectName.RawData.AsSpan().SequenceEqual(node.IssuerName.RawData)) ?? cas.FirstOrDefault();
        if (node is null || ca is null)
        {
            var why = all.Any(c => c.HasPrivateKey && IsCa(c))
                ? $"--remote-tls-cert {path}: this is the cluster CA itself (keep it offline); give the node's own PFX"
                : $"--remote-tls-cert {path}: not a node certificate with its cluster CA (make them with 'higgs cluster certs --out DIR --nodes a,b')";
            foreach (var c in all) c.Dispose();
            throw new CliUsageException(why);
        }
        foreach (var c in all) if (c != node && c != ca) c.Dispose();
        return (node, ca);
    }

    /// <summary>True when <paramref name="peer"/> is a node certificate issued directly by <paramref name="ca"/> and valid now.</summary>
    public static bool IssuedBy(X509Certificate2 peer, X509Certificate2 ca)
    {
        if (IsCa(peer)) return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.Add(ca);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        chain.ChainPolicy.VerificationFlags = X509VerificationFlags.NoFlag;
        chain.ChainPolicy.DisableCertificateDownloads = true;
        if (!chain.Build(peer)) return false;
        return chain.ChainElements.Count == 2 && chain.ChainElements[1].Certificate.RawData.AsSpan().SequenceEqual(ca.RawData);
    }

    private static bool IsCa(X509Certificate2 c) =>
        c.Extensions.OfType<X509BasicConstraintsExtension>().FirstOrDefault() is { CertificateAuthority: true };

    private static void WritePrivate(string path, byte[] bytes)
    {
        var tmp = path + ".tmp";
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        // created owner-only, never briefly readable by others
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        File.Delete(tmp);
        using (var f = new FileStream(tmp, options))
            f.Write(bytes);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(tmp, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.Move(tmp, path, overwrite: false);
    }
}
