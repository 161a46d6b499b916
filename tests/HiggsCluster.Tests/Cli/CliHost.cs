using HiggsCluster.Tests.Harness;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Akka.Hosting;
using HiggsCluster.Cli.CommandHost;
using HiggsCluster.Cli.Node;
using HiggsCluster.Cli.Pbm;
using HiggsCluster.Tests.Cluster;
using Microsoft.Extensions.Hosting;
using Xunit;

namespace HiggsCluster.Tests.Cli;

/// <summary>A TextWriter that keeps every line (the node's HIGGS_NODE / HIGGS_CMD status lines).</summary>
internal sealed class LineSink : TextWriter
{
    private readonly StringBuilder _partial = new();
    public ConcurrentQueue<string> Lines { get; } = new();
    public override Encoding Encoding => Encoding.UTF8;

    public override void Write(char value)
    {
        lock (_partial)
        {
            if (value == '\n') { Lines.Enqueue(_partial.ToString().TrimEnd('\r')); _partial.Clear(); }
            else _partial.Append(value);
        }
    }
}

/// <summary>
/// One in-process cluster node (coordinator role, forms a cluster with itself) with its command host on a free
/// port, and the CLI run in-process against it (the same code path as the `higgs` process, without its start-up).
/// </summary>
internal sealed class CliHost : IAsyncDisposable
{
    public const string Token = "test-token-0123456789abcdef";
    private readonly IHost _host;
    public LineSink Status { get; } = new();
    public int Port { get; private set; }
    public string Target => $"127.0.0.1:{Port}";
    public string TokenFile { get; }

    private CliHost(CommandHostOptions cmd, string tokenFile)
    {
        TokenFile = tokenFile;
        int port = LocalPorts.Next();
        var node = new NodeOptions { Port = port, Seeds = new[] { $"127.0.0.1:{port}" }, Roles = new[] { "coordinator" }, CommandHost = cmd }.Validate();
        _host = new HostBuilder().ConfigureServices(s => s.AddAkka(node.SystemName, (b, _) => b.AddHiggsNode(node, Status))).Build();
    }

    public static async Task<CliHost> Start(string dir, IReadOnlyList<string> dataRoots, IReadOnlyList<string> outputRoots, string? tlsPfx = null, int maxRequest = Wire.DefaultMaxRequestBytes,
        Func<CommandHostOptions, CommandHostOptions>? limits = null)
    {
        var tokenFile = Path.Combine(dir, "token");
        await File.WriteAllTextAsync(tokenFile, Token + "\n");
        var cmd = new CommandHostOptions
        {
            Port = 0, Token = Token, DataRoots = dataRoots, OutputRoots = outputRoots, TlsCertificate = tlsPfx, MaxRequestBytes = maxRequest,
        }.Validate();
        if (limits is not null) cmd = limits(cmd).Validate();
        var h = new CliHost(cmd, tokenFile);
        await h._host.StartAsync(TestContext.Current.CancellationToken);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var line = h.Status.Lines.FirstOrDefault(l => l.StartsWith("HIGGS_CMD listening=", StringComparison.Ordinal));
            if (line is not null)
            {
                h.Port = int.Parse(line.Split(' ')[1].Split(':')[^1]);
                return h;
            }
            await Task.Delay(50);
        }
        throw new TimeoutException("the command host did not report its port:\n" + string.Join("\n", h.Status.Lines));
    }

    /// <summary>Runs `higgs &lt;target&gt; args…` in-process; returns the exit code and both outputs.</summary>
    public (int Code, string Out, string Err) Cli(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = PbmCommand.Run(new[] { Target }.Concat(args).ToArray(), o, e);
        return (code, o.ToString(), e.ToString());
    }

    public IEnumerable<string> Refusals => Status.Lines.Where(l => l.StartsWith("HIGGS_CMD refused", StringComparison.Ordinal));

    /// <summary>Sends raw bytes as a request and returns the host's reply frames.</summary>
    public async Task<string> Raw(byte[] request)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, Port);
        var s = tcp.GetStream();
        try { await s.WriteAsync(request); } catch (IOException) { }
        try { return await new StreamReader(s).ReadToEndAsync(); } catch (IOException) { return ""; }
    }

    public async ValueTask DisposeAsync()
    {
        await _host.StopAsync(CancellationToken.None);
        _host.Dispose();
    }

    /// <summary>A self-signed certificate for 127.0.0.1/localhost: the PFX for the host, the public part for the client.</summary>
    public static (string Pfx, string Cer) MakeCertificate(string dir, string name = "host")
    {
        using var key = RSA.Create(2048);
        var req = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddIpAddress(IPAddress.Loopback);
        san.AddDnsName("localhost");
        req.CertificateExtensions.Add(san.Build());
        req.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, false));
        req.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(new OidCollection { new("1.3.6.1.5.5.7.3.1"), new("1.3.6.1.5.5.7.3.2") }, false));
        using var cert = req.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        var pfx = Path.Combine(dir, name + ".pfx");
        var cer = Path.Combine(dir, name + ".crt");
        File.WriteAllBytes(pfx, cert.Export(X509ContentType.Pkcs12));
        File.WriteAllText(cer, cert.ExportCertificatePem());
        return (pfx, cer);
    }
}
